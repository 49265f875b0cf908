//! Whether the WebEngage destination is paused (401/404, missing credentials) and why;
//! shared by every worker through the database.

use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;

use super::outbox::interval;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DestinationState {
    pub paused_reason: Option<String>,
    pub paused_at: Option<OffsetDateTime>,
    pub next_probe_at: Option<OffsetDateTime>,
}

impl DestinationState {
    pub fn is_paused(&self) -> bool {
        self.paused_reason.is_some()
    }
}

pub async fn load(pool: &PgPool) -> Result<DestinationState, sqlx::Error> {
    sqlx::query_as(
        "SELECT paused_reason, paused_at, next_probe_at FROM destination_state WHERE id = 1",
    )
    .fetch_one(pool)
    .await
}

/// Pauses delivery for every worker. `paused_at` keeps the time of the first pause while
/// the reason is renewed; `next_probe_at` None means no probing (nothing to try with).
pub async fn pause(
    pool: &PgPool,
    reason: &str,
    next_probe_at: Option<OffsetDateTime>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE destination_state
         SET paused_reason = $1, paused_at = COALESCE(paused_at, now()), next_probe_at = $2, updated_at = now()
         WHERE id = 1",
    )
    .bind(reason)
    .bind(next_probe_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Delivery runs again.
pub async fn resume(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE destination_state SET paused_reason = NULL, paused_at = NULL, next_probe_at = NULL, updated_at = now()
         WHERE id = 1",
    )
    .execute(pool)
    .await
    .map(|_| ())
}

/// While paused: takes the turn to probe when it is due, and moves the next probe
/// `every` later, so that of many workers only one probes at a time.
pub async fn take_probe(pool: &PgPool, every: Duration) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE destination_state SET next_probe_at = now() + $1, updated_at = now()
         WHERE id = 1 AND paused_reason IS NOT NULL AND (next_probe_at IS NULL OR next_probe_at <= now())",
    )
    .bind(interval(every))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Makes a probe due now: a worker that starts with (possibly new) credentials should
/// find out at once whether they work.
pub async fn probe_now(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE destination_state SET next_probe_at = now(), updated_at = now() WHERE id = 1 AND paused_reason IS NOT NULL")
        .execute(pool)
        .await
        .map(|_| ())
}
