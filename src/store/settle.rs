//! Settling claimed rows with their lease: every statement is guarded by the lease
//! token, so a row whose lease expired and was claimed again elsewhere is never settled
//! twice. Closing a user's head (delivered, dead) promotes the user's next open row in
//! a statement of its own (see `outbox`).

use std::time::Duration;

use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::outbox::{Lease, interval};

/// A row WebEngage took, and the row whose record carried it when it was merged into
/// another's (coalescing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub lease: Lease,
    pub coalesced_into: Option<i64>,
}

/// The row reached WebEngage. Returns false when the lease was no longer ours.
pub async fn mark_delivered(pool: &PgPool, lease: Lease) -> Result<bool, sqlx::Error> {
    let delivered = Delivered {
        lease,
        coalesced_into: None,
    };
    Ok(!mark_delivered_many(pool, &[delivered]).await?.is_empty())
}

/// Settles rows WebEngage took, in one statement. Returns the ids that were still ours
/// to settle.
pub async fn mark_delivered_many(
    pool: &PgPool,
    rows: &[Delivered],
) -> Result<Vec<i64>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.lease.id).collect();
    let tokens: Vec<Uuid> = rows.iter().map(|r| r.lease.token).collect();
    let carriers: Vec<Option<i64>> = rows.iter().map(|r| r.coalesced_into).collect();
    let settled: Vec<(i64, Option<String>)> = sqlx::query_as(
        "UPDATE outbox o SET status = 'delivered', attempts = attempts + 1, delivered_at = now(),
             coalesced_into = l.carrier, last_error = NULL, lease_until = NULL, lease_token = NULL,
             updated_at = now()
         FROM UNNEST($1::int8[], $2::uuid[], $3::int8[]) AS l(id, token, carrier)
         WHERE o.id = l.id AND o.lease_token = l.token AND o.status = 'in_flight'
         RETURNING o.id, o.user_id",
    )
    .bind(&ids)
    .bind(&tokens)
    .bind(&carriers)
    .fetch_all(pool)
    .await?;
    let users: Vec<String> = settled.iter().filter_map(|(_, u)| u.clone()).collect();
    promote_heads(pool, &users).await?;
    Ok(settled.into_iter().map(|(id, _)| id).collect())
}

/// The row will never be delivered (rejected by WebEngage, or too old to keep trying).
pub async fn mark_dead(pool: &PgPool, lease: Lease, error: &str) -> Result<bool, sqlx::Error> {
    let settled: Option<Option<String>> = sqlx::query_scalar(
        "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = $3,
             lease_until = NULL, lease_token = NULL, updated_at = now()
         WHERE id = $1 AND lease_token = $2 AND status = 'in_flight'
         RETURNING user_id",
    )
    .bind(lease.id)
    .bind(lease.token)
    .bind(error)
    .fetch_optional(pool)
    .await?;
    let Some(user) = settled else {
        return Ok(false);
    };
    promote_heads(pool, user.as_slice()).await?;
    Ok(true)
}

/// Makes each of `users`' first open row its head, where it is not yet. Run it in a
/// statement after the one that closed their heads, never in the same (see `outbox`).
pub async fn promote_heads<'e>(
    executor: impl PgExecutor<'e>,
    users: &[String],
) -> Result<(), sqlx::Error> {
    if users.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE outbox o SET head = true
         FROM (SELECT DISTINCT u FROM UNNEST($1::text[]) AS t(u)) AS users
         CROSS JOIN LATERAL (
             SELECT min(e.id) AS id FROM outbox e
             WHERE e.user_id = users.u AND e.status IN ('pending', 'in_flight')) AS first
         WHERE o.id = first.id AND NOT o.head",
    )
    .bind(users)
    .execute(executor)
    .await
    .map(|_| ())
}

/// Back to pending, due at `next_attempt_at`; `charge_attempt` counts this try against
/// the row. An absolute time (not a delay) lets the rows of one bulk call come due
/// together, and so be batched together, with the same request id, again.
pub async fn schedule_retry(
    pool: &PgPool,
    lease: Lease,
    next_attempt_at: OffsetDateTime,
    error: &str,
    charge_attempt: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE outbox SET status = 'pending', next_attempt_at = $3, last_error = $4,
             attempts = attempts + CASE WHEN $5 THEN 1 ELSE 0 END,
             lease_until = NULL, lease_token = NULL, updated_at = now()
         WHERE id = $1 AND lease_token = $2 AND status = 'in_flight'",
    )
    .bind(lease.id)
    .bind(lease.token)
    .bind(next_attempt_at)
    .bind(error)
    .bind(charge_attempt)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Back to pending without charging an attempt: the row was not at fault (destination
/// paused, rate limit, shutdown). Due at `not_before`, or at once when None.
/// `last_error` is kept.
pub async fn release(
    pool: &PgPool,
    lease: Lease,
    not_before: Option<OffsetDateTime>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE outbox SET status = 'pending', next_attempt_at = COALESCE($3, now()),
             lease_until = NULL, lease_token = NULL, updated_at = now()
         WHERE id = $1 AND lease_token = $2 AND status = 'in_flight'",
    )
    .bind(lease.id)
    .bind(lease.token)
    .bind(not_before)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `release` of many rows at once, due now. Returns how many were still ours.
pub async fn release_many(pool: &PgPool, leases: &[Lease]) -> Result<u64, sqlx::Error> {
    if leases.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = leases.iter().map(|l| l.id).collect();
    let tokens: Vec<Uuid> = leases.iter().map(|l| l.token).collect();
    let done = sqlx::query(
        "UPDATE outbox o SET status = 'pending', next_attempt_at = now(),
             lease_until = NULL, lease_token = NULL, updated_at = now()
         FROM UNNEST($1::int8[], $2::uuid[]) AS l(id, token)
         WHERE o.id = l.id AND o.lease_token = l.token AND o.status = 'in_flight'",
    )
    .bind(&ids)
    .bind(&tokens)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// The heartbeat of a live worker: extends the leases it still holds, so a lease can be
/// short (a killed worker's rows come back quickly) without expiring under a slow call
/// or a wait for the rate limit. Returns how many leases were extended.
pub async fn renew_leases(
    pool: &PgPool,
    leases: &[Lease],
    lease: Duration,
) -> Result<u64, sqlx::Error> {
    if leases.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = leases.iter().map(|l| l.id).collect();
    let tokens: Vec<Uuid> = leases.iter().map(|l| l.token).collect();
    let done = sqlx::query(
        "UPDATE outbox o SET lease_until = now() + $3
         FROM UNNEST($1::int8[], $2::uuid[]) AS l(id, token)
         WHERE o.id = l.id AND o.lease_token = l.token AND o.status = 'in_flight'",
    )
    .bind(&ids)
    .bind(&tokens)
    .bind(interval(lease))
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Rows whose worker died or hung go back to pending, uncharged (the call may never
/// have been made). Returns how many.
pub async fn release_expired_leases(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE outbox SET status = 'pending', lease_until = NULL, lease_token = NULL, updated_at = now()
         WHERE status = 'in_flight' AND lease_until < now()",
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
