//! Delivery: drains the outbox into WebEngage, within its rate limits, with retries.
//!
//! `worker` (the loop: wake-ups, claims, pause and probe), `bulk` (grouping rows into
//! bulk calls, splitting on 400), `send` (one row: call, record, settle), `client` (the
//! HTTP call and its classification), `limiter` (per-endpoint quotas), `backoff`,
//! `transient` (settling through a short Postgres outage).

pub mod backoff;
pub mod bulk;
pub mod client;
pub mod limiter;
pub mod observe;
pub mod send;
pub mod transient;
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
