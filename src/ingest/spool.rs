//! The optional local spool (`BRIDGE_SPOOL_DIR`): while Postgres is unavailable,
//! authenticated webhooks of every format (LeadSquared may disable a webhook answering
//! non-200; Salesforce gets its Ack, JSON callers their counts) are appended to a local
//! file, fsynced, and only then answered. A background task replays them into Postgres,
//! in order, through the normal ingest path once it is back.
//!
//! The trade-off (docs/operations.md): such a 200 rests on this disk until replayed.
//!
//! Format: JSON lines, each prefixed with the SHA-256 of its JSON, so a line torn by a
//! crash mid-write (never acknowledged: the fsync comes before the answer) is detected
//! and skipped. Files: `active.jsonl` takes appends; replay renames it to
//! `ready-<n>.jsonl` and deletes a ready file only after all of its entries committed.
//! Replay is idempotent: a re-run stores each record once (dedupe keys).
//!
//! An entry that can never be stored (its source was removed, or Postgres refuses it)
//! is set aside in `quarantine.jsonl`, in the same format, and replay goes on with the
//! next: one bad entry must not hold back every webhook behind it. Quarantined entries
//! are logged, counted (`bridge_spool_quarantined_total`) and reported by
//! [`Spool::quarantine`].
//!
//! The files hold raw CRM bodies: the folder is made `0700` and every file `0600`.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{Ingest, Replay};
use crate::source::InboundRequest;

const ACTIVE: &str = "active.jsonl";
const QUARANTINE: &str = "quarantine.jsonl";
const REPLAY_EVERY: Duration = Duration::from_secs(1);
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

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

    pub(super) fn request(&self) -> Option<InboundRequest> {
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
    /// Entries set aside in the quarantine file.
    quarantined: AtomicU64,
}

/// The entries set aside because they can never be stored, for support staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantine {
    pub entries: u64,
    /// The file holding them (JSON lines; each entry's body is base64).
    pub file: PathBuf,
}

impl Spool {
    /// Opens (creating) the folder, makes it and its files private, and counts what an
    /// earlier run left to replay.
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
        let mut pending = 0;
        for file in spool_files(dir)? {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(FILE_MODE))?;
            pending += std::fs::read_to_string(&file)?.lines().count() as u64;
        }
        let quarantine = dir.join(QUARANTINE);
        let quarantined = match std::fs::read_to_string(&quarantine) {
            Ok(text) => {
                std::fs::set_permissions(&quarantine, std::fs::Permissions::from_mode(FILE_MODE))?;
                text.lines().count() as u64
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let spool = Spool {
            dir: dir.to_path_buf(),
            files: tokio::sync::Mutex::new(()),
            pending: AtomicU64::new(pending),
            quarantined: AtomicU64::new(quarantined),
        };
        spool.publish();
        Ok(spool)
    }

    /// Entries waiting to be replayed into Postgres.
    pub fn waiting(&self) -> u64 {
        self.pending.load(Ordering::SeqCst)
    }

    /// What is set aside in the quarantine file.
    pub fn quarantine(&self) -> Quarantine {
        Quarantine {
            entries: self.quarantined.load(Ordering::SeqCst),
            file: self.dir.join(QUARANTINE),
        }
    }

    /// While anything waits for replay, new requests queue behind it, keeping order.
    pub fn has_backlog(&self) -> bool {
        self.pending.load(Ordering::SeqCst) > 0
    }

    /// Appends one entry and fsyncs it; only then may the webhook be answered.
    pub async fn append(&self, entry: &SpoolEntry) -> std::io::Result<()> {
        let line = line_of(entry)?;
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
    /// storage failure (Postgres still down) and leaves the rest for the next round;
    /// sets aside an entry that can never be stored and goes on.
    pub async fn replay(&self, ingest: &Ingest) -> std::io::Result<u64> {
        self.rotate().await?;
        let mut replayed = 0;
        for file in spool_files(&self.dir)?
            .into_iter()
            .filter(|f| !f.ends_with(ACTIVE))
        {
            let text = tokio::fs::read_to_string(&file).await?;
            let lines: Vec<&str> = text.lines().collect();
            for (done, line) in lines.iter().enumerate() {
                if !self.replay_line(ingest, line).await? {
                    if done > 0 {
                        // What was stored or set aside is not replayed again.
                        self.keep_only(&file, &lines[done..])?;
                        self.pending.fetch_sub(done as u64, Ordering::SeqCst);
                        self.publish();
                    }
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
        metrics::gauge!("bridge_spool_quarantined_records")
            .set(self.quarantined.load(Ordering::SeqCst) as f64);
    }

    /// Stores one spooled line; false when Postgres is still unavailable.
    async fn replay_line(&self, ingest: &Ingest, line: &str) -> std::io::Result<bool> {
        let Some(entry) = parse_line(line) else {
            tracing::error!("skipping a torn or corrupted spool line (it was never acknowledged)");
            return Ok(true);
        };
        match ingest.store_spooled(&entry).await {
            Ok(()) => {
                metrics::counter!("bridge_spool_replayed_total").increment(1);
                Ok(true)
            }
            Err(Replay::Later(why)) => {
                tracing::warn!(error = %why, "spool replay waits: Postgres is still unavailable");
                Ok(false)
            }
            Err(Replay::Refused(why)) => {
                self.set_aside(&entry).await?;
                tracing::error!(error = %why, source = %entry.source, request_id = %entry.request_id, file = %self.dir.join(QUARANTINE).display(),
                    "a spooled webhook can never be stored; it is set aside in the quarantine file and replay goes on");
                Ok(true)
            }
        }
    }

    /// Appends an entry to the quarantine file, fsynced.
    async fn set_aside(&self, entry: &SpoolEntry) -> std::io::Result<()> {
        let line = line_of(entry)?;
        let (dir, path) = (self.dir.clone(), self.dir.join(QUARANTINE));
        tokio::task::spawn_blocking(move || append_synced(&dir, &path, line.as_bytes()))
            .await
            .map_err(std::io::Error::other)??;
        self.quarantined.fetch_add(1, Ordering::SeqCst);
        metrics::counter!("bridge_spool_quarantined_total").increment(1);
        self.publish();
        Ok(())
    }

    /// Replaces `file` with the given lines (written aside, fsynced, renamed over it).
    fn keep_only(&self, file: &Path, lines: &[&str]) -> std::io::Result<()> {
        let next = file.with_extension("jsonl.next");
        let mut text = lines.join("\n");
        text.push('\n');
        let mut out = private_file(&next, false)?;
        out.write_all(text.as_bytes())?;
        out.sync_data()?;
        std::fs::rename(&next, file)?;
        sync_dir(&self.dir)
    }
}

/// An entry as one spool line: the SHA-256 of its JSON, a space, the JSON, a newline.
fn line_of(entry: &SpoolEntry) -> std::io::Result<String> {
    let json = serde_json::to_string(entry).map_err(std::io::Error::other)?;
    Ok(format!(
        "{} {json}\n",
        hex::encode(Sha256::digest(json.as_bytes()))
    ))
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

/// Opens a file readable by the service's user only (`0600` when it is created).
fn private_file(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .mode(FILE_MODE)
        .open(path)
}

fn append_synced(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let created = !path.exists();
    let mut file = private_file(path, true)?;
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
pub fn spawn_replayer(spool: Arc<Spool>, ingest: Ingest, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            let replayed = match spool.has_backlog() {
                true => spool.replay(&ingest).await.map(|_| ()),
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

    #[tokio::test]
    async fn the_folder_and_its_files_are_private() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("spool");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A file an older version left readable to all.
        std::fs::write(dir.join("ready-1.jsonl"), "").unwrap();
        std::fs::set_permissions(
            dir.join("ready-1.jsonl"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let spool = Spool::open(&dir).unwrap();
        spool
            .append(&SpoolEntry::new(
                "leadsquared",
                "r1",
                &InboundRequest::default(),
            ))
            .await
            .unwrap();
        spool
            .set_aside(&SpoolEntry::new(
                "leadsquared",
                "r2",
                &InboundRequest::default(),
            ))
            .await
            .unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for file in ["ready-1.jsonl", ACTIVE, QUARANTINE] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
        }
        assert_eq!(spool.quarantine().entries, 1);
        assert_eq!(
            Spool::open(&dir).unwrap().quarantine().entries,
            1,
            "counted again at start"
        );
    }
}
