//! Delivery: drains the outbox into WebEngage, within its rate limits, with retries.
//!
//! `worker` (the loop: a `step` that claims due rows or probes, and the waits between),
//! `bulk` (grouping claimed rows into records and jobs), `coalesce` (merging a user's
//! queued updates), `job` (one job: call, decide, settle; the types jobs share),
//! `policy` (the one pure function from WebEngage's answer to each row's fate),
//! `settle` (carrying fates out), `breaker` (failed calls in a row), `limiter`
//! (per-endpoint quotas), `backoff`, `transient` (settling through a short Postgres
//! outage), `maintenance` (leases, retention, pruning, the backlog sample), `wakeups`
//! (NOTIFY, SIGHUP). The HTTP client itself is `webengage::client`.

pub mod backoff;
pub mod breaker;
pub mod bulk;
pub mod coalesce;
pub mod job;
pub mod limiter;
pub mod maintenance;
pub mod observe;
pub mod policy;
pub mod settle;
pub mod transient;
pub mod wakeups;
pub mod worker;

use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{DeliverySettings, WebEngageSettings};

/// Starts the delivery worker; it stops when `shutdown` is cancelled, after handing
/// its unfinished rows back to pending.
pub fn spawn_worker(
    pool: PgPool,
    webengage: WebEngageSettings,
    delivery: DeliverySettings,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(worker::run(pool, webengage, delivery, shutdown))
}
