//! The backlog: rows queued per kind, the delivery rate, the time to drain at the
//! configured quotas, and the last day minute by minute (`backlog_minutes`, written
//! by each worker once a minute).

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::destination::Capacity;
use super::outbox::interval;

/// Rows pending or in flight, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Queued {
    pub users: i64,
    pub events: i64,
    pub transactions: i64,
}

impl Queued {
    pub fn total(&self) -> i64 {
        self.users + self.events + self.transactions
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Backlog {
    pub queued: Queued,
    /// Rows delivered per minute, over the last five minutes.
    pub delivered_per_minute: f64,
    /// Records per minute the workers can deliver of each kind at their quotas; None
    /// until a worker has started.
    pub capacity_per_minute: Option<Capacity>,
    /// How long the queued rows take at those quotas (the kinds drain side by side);
    /// None without a capacity.
    pub drain_seconds: Option<f64>,
}

const QUEUED: &str = "SELECT count(*) FILTER (WHERE kind = 'user') AS users,
            count(*) FILTER (WHERE kind = 'event') AS events,
            count(*) FILTER (WHERE kind = 'transaction') AS transactions
     FROM outbox WHERE status IN ('pending', 'in_flight')";

pub async fn queued(pool: &PgPool) -> Result<Queued, sqlx::Error> {
    sqlx::query_as(QUEUED).fetch_one(pool).await
}

pub async fn backlog(pool: &PgPool) -> Result<Backlog, sqlx::Error> {
    summary(pool, queued(pool).await?).await
}

/// The backlog of `queued` rows (counted by the caller).
pub async fn summary(pool: &PgPool, queued: Queued) -> Result<Backlog, sqlx::Error> {
    let recent: Option<i64> = sqlx::query_scalar(
        "SELECT sum(delivered)::int8 FROM backlog_minutes WHERE at > now() - interval '5 minutes'",
    )
    .fetch_one(pool)
    .await?;
    let capacity: (Option<i32>, Option<i32>, Option<i32>) = sqlx::query_as(
        "SELECT capacity_users, capacity_events, capacity_transactions FROM destination_state WHERE id = 1",
    )
    .fetch_one(pool)
    .await?;
    let capacity = match capacity {
        (Some(u), Some(e), Some(t)) => Some(Capacity {
            users: u.max(0) as u32,
            events: e.max(0) as u32,
            transactions: t.max(0) as u32,
        }),
        _ => None,
    };
    Ok(Backlog {
        queued,
        delivered_per_minute: recent.unwrap_or(0) as f64 / 5.0,
        drain_seconds: capacity.and_then(|c| drain_seconds(&queued, &c)),
        capacity_per_minute: capacity,
    })
}

/// How long `queued` takes at `capacity` records per minute per kind; None when a kind
/// with rows has no capacity.
pub fn drain_seconds(queued: &Queued, capacity: &Capacity) -> Option<f64> {
    [
        (queued.users, capacity.users),
        (queued.events, capacity.events),
        (queued.transactions, capacity.transactions),
    ]
    .into_iter()
    .filter(|(rows, _)| *rows > 0)
    .map(|(rows, per_minute)| (per_minute > 0).then(|| rows as f64 * 60.0 / f64::from(per_minute)))
    .try_fold(0.0_f64, |longest, seconds| seconds.map(|s| longest.max(s)))
}

/// Notes the current minute: the queued rows, and `delivered` more rows delivered.
pub async fn sample(pool: &PgPool, delivered: u64) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO backlog_minutes (at, users, events, transactions, delivered)
         SELECT date_trunc('minute', now()), q.users, q.events, q.transactions, $1 FROM ({QUEUED}) q
         ON CONFLICT (at) DO UPDATE SET users = EXCLUDED.users, events = EXCLUDED.events,
             transactions = EXCLUDED.transactions,
             delivered = backlog_minutes.delivered + EXCLUDED.delivered"
    ))
    .bind(i64::try_from(delivered).unwrap_or(i64::MAX))
    .execute(pool)
    .await
    .map(|_| ())
}

/// One minute of the chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Minute {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub users: i64,
    pub events: i64,
    pub transactions: i64,
    pub delivered: i64,
}

/// The sampled minutes of the last `span` (24 hours on the dashboard), oldest first.
/// Minutes no worker sampled are absent.
pub async fn history(pool: &PgPool, span: Duration) -> Result<Vec<Minute>, sqlx::Error> {
    sqlx::query_as(
        "SELECT at, users, events, transactions, delivered FROM backlog_minutes
         WHERE at > now() - $1 ORDER BY at",
    )
    .bind(interval(span))
    .fetch_all(pool)
    .await
}

/// Deletes minutes older than `older_than`. Returns how many.
pub async fn prune(pool: &PgPool, older_than: Duration) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM backlog_minutes WHERE at < now() - $1")
        .bind(interval(older_than))
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_drains_at_the_pace_of_its_slowest_kind() {
        let capacity = Capacity {
            users: 12_500,
            events: 12_500,
            transactions: 100,
        };
        let queued = Queued {
            users: 25_000,
            events: 6_250,
            transactions: 0,
        };
        assert_eq!(drain_seconds(&queued, &capacity), Some(120.0));
        let with_txn = Queued {
            transactions: 200,
            ..queued
        };
        assert_eq!(drain_seconds(&with_txn, &capacity), Some(120.0));
        let slow_txn = Queued {
            transactions: 1000,
            ..queued
        };
        assert_eq!(drain_seconds(&slow_txn, &capacity), Some(600.0));
        assert_eq!(drain_seconds(&Queued::default(), &capacity), Some(0.0));
        let none = Capacity {
            transactions: 0,
            ..capacity
        };
        assert_eq!(drain_seconds(&slow_txn, &none), None);
    }
}
