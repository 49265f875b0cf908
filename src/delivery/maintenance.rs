//! The worker's maintenance duties, each a small service on its own timer: the lease
//! heartbeat, expired leases back to pending, the retention purge (`store::lifecycle`), pruning old rate
//! windows and outages, and the backlog sample of each minute.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::{Id, JoinHandle};
use tokio_util::sync::CancellationToken;

use super::job::Context;
use crate::config::DeliverySettings;
use crate::store::outbox::Lease;
use crate::store::{backlog, destination, lifecycle, rate_windows, settle};

/// How long a claim lasts without a heartbeat. Live workers renew their leases every
/// `LEASE_SWEEP`, so this only bounds how long a killed worker's rows wait: three
/// sweeps, longer than a call (30 s timeout) plus settling.
pub const LEASE: Duration = Duration::from_secs(90);
/// How often leases are renewed and expired ones go back to pending.
const LEASE_SWEEP: Duration = Duration::from_secs(30);
/// How often delivered rows past retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
const PURGE_BATCH: i64 = 500;
/// Rate windows older than this are deleted (they only matter while current).
const RATE_WINDOW_KEEP: Duration = Duration::from_secs(3600);
/// Outages that ended longer ago than this no longer extend any row's retry age that
/// matters (`BRIDGE_RETRY_MAX_AGE` is 72 h by default).
const OUTAGE_KEEP: Duration = Duration::from_secs(30 * 86400);
/// The backlog chart shows a day; a little more is kept.
const BACKLOG_KEEP: Duration = Duration::from_secs(26 * 3600);
const SAMPLE_EVERY: Duration = Duration::from_secs(60);

/// The leases each running job holds: the worker adds and removes them, the heartbeat
/// renews them.
#[derive(Debug, Clone, Default)]
pub struct LeaseBook(Arc<Mutex<HashMap<Id, Vec<Lease>>>>);

impl LeaseBook {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Id, Vec<Lease>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn hold(&self, job: Id, leases: Vec<Lease>) {
        self.map().insert(job, leases);
    }

    /// The leases of a finished job, forgotten.
    pub fn drop_job(&self, job: Id) -> Vec<Lease> {
        self.map().remove(&job).unwrap_or_default()
    }

    pub fn all(&self) -> Vec<Lease> {
        self.map().values().flatten().copied().collect()
    }

    /// Every lease, forgotten (shutdown).
    pub fn take_all(&self) -> Vec<Lease> {
        self.map().drain().flat_map(|(_, l)| l).collect()
    }
}

/// Starts every maintenance service; they stop with `shutdown`.
pub fn spawn_all(
    ctx: Arc<Context>,
    book: LeaseBook,
    settings: &DeliverySettings,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let settings = settings.clone();
    let pool = ctx.pool.clone();
    vec![
        every(LEASE_SWEEP, shutdown, {
            let (pool, book) = (pool.clone(), book);
            move || renew_leases(pool.clone(), book.clone())
        }),
        every(LEASE_SWEEP, shutdown, {
            let pool = pool.clone();
            move || release_expired(pool.clone())
        }),
        every(PURGE_EVERY, shutdown, {
            let pool = pool.clone();
            move || purge(pool.clone(), settings.retention, settings.audit_retention)
        }),
        every(RATE_WINDOW_KEEP, shutdown, {
            let pool = pool.clone();
            move || prune(pool.clone())
        }),
        every(SAMPLE_EVERY, shutdown, move || sample_backlog(ctx.clone())),
    ]
}

/// Runs `duty` now and then every `period` until `shutdown`.
fn every<F, Fut>(period: Duration, shutdown: &CancellationToken, mut duty: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(period);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = timer.tick() => duty().await,
            }
        }
    })
}

/// The heartbeat of a live worker: its leases outlive slow calls and quota waits.
async fn renew_leases(pool: sqlx::PgPool, book: LeaseBook) {
    let held = book.all();
    if let Err(e) = settle::renew_leases(&pool, &held, LEASE).await {
        tracing::warn!(error = %e, rows = held.len(), "cannot renew leases; they expire in {LEASE:?}");
    }
}

/// Rows of a worker that died or hung go back to pending.
async fn release_expired(pool: sqlx::PgPool) {
    match settle::release_expired_leases(&pool).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "released expired leases"),
        Err(e) => tracing::warn!(error = %e, "cannot release expired leases"),
    }
}

/// Finished records past `BRIDGE_RETENTION`, audit entries past `BRIDGE_AUDIT_RETENTION`.
async fn purge(pool: sqlx::PgPool, retention: Duration, audit_retention: Duration) {
    match lifecycle::purge_expired(&pool, retention, audit_retention, PURGE_BATCH).await {
        Ok(p) if p == lifecycle::Purged::default() => {}
        Ok(p) => tracing::info!(
            outbox = p.outbox,
            inbound = p.inbound,
            audit = p.audit,
            "purged finished records past retention"
        ),
        Err(e) => tracing::warn!(error = %e, "retention purge failed"),
    }
}

/// Old rate windows, outages and backlog minutes.
async fn prune(pool: sqlx::PgPool) {
    if let Err(e) = rate_windows::prune(&pool, RATE_WINDOW_KEEP).await {
        tracing::warn!(error = %e, "cannot prune old rate windows");
    }
    if let Err(e) = destination::prune_outages(&pool, OUTAGE_KEEP).await {
        tracing::warn!(error = %e, "cannot prune old outages");
    }
    if let Err(e) = backlog::prune(&pool, BACKLOG_KEEP).await {
        tracing::warn!(error = %e, "cannot prune old backlog minutes");
    }
}

/// The minute's backlog and this process's deliveries since the last sample.
async fn sample_backlog(ctx: Arc<Context>) {
    let delivered = ctx.delivered.swap(0, Ordering::Relaxed);
    if let Err(e) = backlog::sample(&ctx.pool, delivered).await {
        ctx.delivered.fetch_add(delivered, Ordering::Relaxed);
        tracing::warn!(error = %e, "cannot record the backlog minute");
    }
}
