//! Whether the WebEngage destination is running, paused (401/404, missing credentials)
//! or degraded (the circuit breaker: failed calls in a row), and why; shared by every
//! worker through the database. Paused and degraded times are kept as outages: they do
//! not count towards a row's retry age.

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::outbox::interval;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DestinationState {
    pub paused_reason: Option<String>,
    pub paused_at: Option<OffsetDateTime>,
    pub degraded_reason: Option<String>,
    pub degraded_at: Option<OffsetDateTime>,
    pub next_probe_at: Option<OffsetDateTime>,
    /// Probes that failed since the destination was degraded: the probe backoff.
    pub failed_probes: i32,
}

/// What the workers do, from the shared state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum Mode {
    Running,
    /// Nothing can be delivered until someone fixes the settings; a probe now and then.
    Paused(String),
    /// WebEngage keeps failing: one probe at a time, on a backoff.
    Degraded(String),
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Running => "running",
            Mode::Paused(_) => "paused",
            Mode::Degraded(_) => "degraded",
        }
    }
}

impl DestinationState {
    pub fn is_paused(&self) -> bool {
        self.paused_reason.is_some()
    }

    pub fn is_degraded(&self) -> bool {
        self.paused_reason.is_none() && self.degraded_reason.is_some()
    }

    /// A pause wins over degraded: a refused key is the problem to fix first.
    pub fn mode(&self) -> Mode {
        match (&self.paused_reason, &self.degraded_reason) {
            (Some(reason), _) => Mode::Paused(reason.clone()),
            (None, Some(reason)) => Mode::Degraded(reason.clone()),
            (None, None) => Mode::Running,
        }
    }
}

pub async fn load(pool: &PgPool) -> Result<DestinationState, sqlx::Error> {
    sqlx::query_as(
        "SELECT paused_reason, paused_at, degraded_reason, degraded_at, next_probe_at, failed_probes
         FROM destination_state WHERE id = 1",
    )
    .fetch_one(pool)
    .await
}

/// Opens an outage unless one is open (the unique index allows one).
const OPEN_OUTAGE: &str = "INSERT INTO destination_outages (reason) VALUES ($1)
     ON CONFLICT ((true)) WHERE ended_at IS NULL DO NOTHING";

/// Pauses delivery for every worker. `paused_at` keeps the time of the first pause while
/// the reason is renewed; `next_probe_at` None means no probing (nothing to try with).
pub async fn pause(
    pool: &PgPool,
    reason: &str,
    next_probe_at: Option<OffsetDateTime>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE destination_state
         SET paused_reason = $1, paused_at = COALESCE(paused_at, now()), next_probe_at = $2, updated_at = now()
         WHERE id = 1",
    )
    .bind(reason)
    .bind(next_probe_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query(OPEN_OUTAGE)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The probe backoff while degraded: `base` doubling per failed probe, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeBackoff {
    pub base: Duration,
    pub max: Duration,
}

/// The circuit breaker opens: every worker stops claiming and one probes. `probe` says
/// the call that failed was the probe (the next one then waits twice as long).
pub async fn degrade(
    pool: &PgPool,
    reason: &str,
    probe: bool,
    backoff: ProbeBackoff,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE destination_state
         SET degraded_reason = $1, degraded_at = COALESCE(degraded_at, now()),
             failed_probes = CASE WHEN $2 AND degraded_reason IS NOT NULL THEN failed_probes + 1 ELSE failed_probes END,
             next_probe_at = CASE WHEN degraded_reason IS NULL OR $2
                 THEN now() + LEAST($4, $3 * power(2, LEAST(failed_probes + CASE WHEN $2 AND degraded_reason IS NOT NULL THEN 1 ELSE 0 END, 30))::float8)
                 ELSE next_probe_at END,
             updated_at = now()
         WHERE id = 1",
    )
    .bind(reason)
    .bind(probe)
    .bind(interval(backoff.base))
    .bind(interval(backoff.max))
    .execute(&mut *tx)
    .await?;
    sqlx::query(OPEN_OUTAGE)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Delivery runs again: not paused, not degraded, the outage over.
pub async fn resume(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE destination_state SET paused_reason = NULL, paused_at = NULL, degraded_reason = NULL,
             degraded_at = NULL, failed_probes = 0, next_probe_at = NULL, updated_at = now()
         WHERE id = 1",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE destination_outages SET ended_at = now() WHERE ended_at IS NULL")
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// While paused or degraded: takes the turn to probe when it is due, and moves the next
/// probe `every` later, so that of many workers only one probes at a time.
pub async fn take_probe(pool: &PgPool, every: Duration) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE destination_state SET next_probe_at = now() + $1, updated_at = now()
         WHERE id = 1 AND (paused_reason IS NOT NULL OR degraded_reason IS NOT NULL)
           AND (next_probe_at IS NULL OR next_probe_at <= now())",
    )
    .bind(interval(every))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Makes a probe due now: a worker that starts with (possibly new) credentials should
/// find out at once whether they work.
pub async fn probe_now(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE destination_state SET next_probe_at = now(), updated_at = now()
         WHERE id = 1 AND (paused_reason IS NOT NULL OR degraded_reason IS NOT NULL)",
    )
    .execute(pool)
    .await
    .map(|_| ())
}

/// Deletes outages that ended more than `older_than` ago. Returns how many.
pub async fn prune_outages(pool: &PgPool, older_than: Duration) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM destination_outages WHERE ended_at < now() - $1")
        .bind(interval(older_than))
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Records per minute the workers can deliver of each kind at their quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Capacity {
    pub users: u32,
    pub events: u32,
    pub transactions: u32,
}

/// Written by each worker at start, read for the time to drain the backlog.
pub async fn set_capacity(pool: &PgPool, capacity: Capacity) -> Result<(), sqlx::Error> {
    let as_int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    sqlx::query(
        "UPDATE destination_state SET capacity_users = $1, capacity_events = $2,
             capacity_transactions = $3, updated_at = now() WHERE id = 1",
    )
    .bind(as_int(capacity.users))
    .bind(as_int(capacity.events))
    .bind(as_int(capacity.transactions))
    .execute(pool)
    .await
    .map(|_| ())
}
