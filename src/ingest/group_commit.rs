//! Group commit: concurrent webhook requests share one transaction (their records, or
//! their bodies when those could not be parsed). Each request is
//! answered only after the commit that holds its records, so "2xx means committed"
//! holds, while Postgres makes one WAL flush for many requests instead of one each.
//!
//! Batching needs no timer: while a flusher commits, requests queue up, and the next
//! free flusher takes everything queued (up to `max_records`). An idle service commits
//! a lone request at once. The server gives each HTTP worker thread its own group
//! commit with one flusher (`startup::build_server`): batches stay large (the CPU per
//! record falls with batch size, on both sides) and no request wakes another thread.
//! For the same reason there are only half as many workers as CPUs by default
//! (`BRIDGE_HTTP_WORKERS`): Postgres needs the other half.
//! A linger (waiting for more requests before flushing) was measured and lost.

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::inbound::{self, Content, IngestCounts, IngestJob, RequestMeta};
use crate::store::storable::is_data_error;

/// A request's content with owned metadata, waiting for a commit.
struct Pending {
    source: String,
    mapping_hash: String,
    content_type: Option<String>,
    request_id: String,
    trace_context: Option<String>,
    content: Content,
    reply: oneshot::Sender<Result<IngestCounts, sqlx::Error>>,
}

impl Pending {
    fn rows(&self) -> usize {
        match &self.content {
            Content::Records(records) => records.len(),
            Content::Malformed(_) => 1,
        }
    }

    fn meta(&self) -> RequestMeta<'_> {
        RequestMeta {
            source: &self.source,
            mapping_hash: &self.mapping_hash,
            content_type: self.content_type.as_deref(),
            request_id: &self.request_id,
            trace_context: self.trace_context.as_deref(),
        }
    }
}

/// The handle requests commit through; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    pool: PgPool,
    queue: mpsc::Sender<Pending>,
}

#[derive(Debug, Clone, Copy)]
pub struct GroupCommitConfig {
    /// Transactions in flight at once. More than one lets a batch collect while
    /// another commits, but makes batches smaller (BENCHMARKS.md, "Profiles").
    pub flushers: usize,
    /// Records per transaction at most.
    pub max_records: usize,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        GroupCommitConfig {
            flushers: 1,
            max_records: 512,
        }
    }
}

impl GroupCommit {
    /// Starts the flushers on the current tokio runtime.
    pub fn spawn(pool: PgPool, config: GroupCommitConfig) -> Self {
        let (queue, receiver) = mpsc::channel(4096);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..config.flushers.max(1) {
            tokio::spawn(flush_loop(
                pool.clone(),
                receiver.clone(),
                config.max_records.max(1),
            ));
        }
        GroupCommit { pool, queue }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Stores one request's content; returns after the commit that holds it.
    pub async fn ingest(
        &self,
        meta: &RequestMeta<'_>,
        content: Content,
    ) -> Result<IngestCounts, sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            source: meta.source.to_owned(),
            mapping_hash: meta.mapping_hash.to_owned(),
            content_type: meta.content_type.map(str::to_owned),
            request_id: meta.request_id.to_owned(),
            trace_context: meta.trace_context.map(str::to_owned),
            content,
            reply,
        };
        if let Err(mpsc::error::SendError(pending)) = self.queue.send(pending).await {
            // No flusher runs (the runtime is shutting down): commit directly.
            return inbound::ingest(&self.pool, &pending.meta(), &pending.content).await;
        }
        answer.await.unwrap_or(Err(sqlx::Error::PoolClosed))
    }
}

/// Each flusher keeps its own connection between batches: taking one from the pool
/// would cost a ping round trip per batch (the pool tests connections it hands out).
/// After a failed batch the connection goes back to the pool, which tests it before
/// anyone uses it again.
async fn flush_loop(
    pool: PgPool,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    max_records: usize,
) {
    let mut held: Option<PoolConnection<Postgres>> = None;
    while let Some(batch) = collect(&receiver, max_records).await {
        let conn = match held.take() {
            Some(conn) => Ok(conn),
            None => pool.acquire().await,
        };
        held = flush(&pool, conn, batch).await;
    }
}

/// Waits for one request, then takes whatever else is already queued.
async fn collect(
    receiver: &Mutex<mpsc::Receiver<Pending>>,
    max_records: usize,
) -> Option<Vec<Pending>> {
    let mut receiver = receiver.lock().await;
    let first = receiver.recv().await?;
    let mut records = first.rows();
    let mut batch = vec![first];
    while records < max_records {
        match receiver.try_recv() {
            Ok(next) => {
                records += next.rows();
                batch.push(next);
            }
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Commits a batch on `conn`; if the shared transaction fails, each request is retried
/// alone so one request's problem cannot fail its neighbours (and a request whose data
/// Postgres refuses is stored record by record). Returns the connection when the batch
/// committed.
async fn flush(
    pool: &PgPool,
    conn: Result<PoolConnection<Postgres>, sqlx::Error>,
    batch: Vec<Pending>,
) -> Option<PoolConnection<Postgres>> {
    metrics::histogram!("bridge_group_commit_requests").record(batch.len() as f64);
    let metas: Vec<RequestMeta<'_>> = batch.iter().map(Pending::meta).collect();
    let jobs: Vec<IngestJob<'_>> = metas
        .iter()
        .zip(&batch)
        .map(|(meta, p)| IngestJob {
            meta,
            content: &p.content,
        })
        .collect();
    let (result, conn) = match conn {
        Ok(mut conn) => (inbound::ingest_batch(&mut conn, &jobs).await, Some(conn)),
        Err(e) => (Err(e), None),
    };
    drop(jobs);
    drop(metas);
    match result {
        Ok(counts) => {
            for (pending, counts) in batch.into_iter().zip(counts) {
                let _ = pending.reply.send(Ok(counts));
            }
            return conn;
        }
        Err(e) if batch.len() == 1 && !is_data_error(&e) => {
            let _ = batch.into_iter().next().map(|p| p.reply.send(Err(e)));
        }
        Err(e) => {
            tracing::warn!(error = %e, requests = batch.len(), "group commit failed; committing its requests one by one");
            for pending in batch {
                let result = inbound::ingest(pool, &pending.meta(), &pending.content).await;
                let _ = pending.reply.send(result);
            }
        }
    }
    None
}
