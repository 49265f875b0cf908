//! Rate windows: how much of each endpoint's quota the current window has used, shared
//! by every worker process through one row per endpoint and window.

use std::time::Duration;

use sqlx::PgPool;

/// What a take got: `granted` permits (0 when the window is spent) and how long the
/// window they belong to still lasts, by the database's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub granted: u32,
    pub window_left: Duration,
}

/// Takes up to `want` permits for `endpoint` in the current window of `window` length,
/// never letting the window's total pass `quota`. One atomic statement: the row lock of
/// the upsert serialises concurrent takers, whichever process they run in.
pub async fn take(
    pool: &PgPool,
    endpoint: &str,
    window: Duration,
    want: u32,
    quota: u32,
) -> Result<Grant, sqlx::Error> {
    let window_ms = window.as_secs_f64().max(0.001) * 1000.0;
    let row: (Option<i32>, f64) = sqlx::query_as(
        "WITH w AS (
             SELECT to_timestamp(floor(extract(epoch FROM now())::float8 * 1000 / $2::float8) * $2::float8 / 1000) AS start),
         took AS (
             INSERT INTO rate_windows AS r (endpoint, window_start, used, last_grant)
             SELECT $1, w.start, LEAST($3::int, $4::int), LEAST($3::int, $4::int) FROM w
             ON CONFLICT (endpoint, window_start) DO UPDATE
                 SET used = r.used + LEAST($3, $4 - r.used), last_grant = LEAST($3, $4 - r.used)
                 WHERE r.used < $4
             RETURNING last_grant)
         SELECT (SELECT last_grant FROM took),
                GREATEST(0, extract(epoch FROM (w.start - now()))::float8 * 1000 + $2::float8) FROM w",
    )
    .bind(endpoint)
    .bind(window_ms)
    .bind(i32::try_from(want.max(1)).unwrap_or(i32::MAX))
    .bind(i32::try_from(quota.max(1)).unwrap_or(i32::MAX))
    .fetch_one(pool)
    .await?;
    Ok(Grant {
        granted: row.0.map_or(0, |g| g.max(0) as u32),
        window_left: Duration::from_secs_f64(row.1 / 1000.0),
    })
}

/// Deletes windows that ended before `older_than` ago. Returns how many.
pub async fn prune(pool: &PgPool, older_than: Duration) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM rate_windows WHERE window_start < now() - $1")
        .bind(super::outbox::interval(older_than))
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}
