//! The outbox: claiming due rows under a lease, and settling them with that lease.
//!
//! A claim commits at once (no transaction is held across a WebEngage call). Every
//! settle is guarded by the lease token, so a row whose lease expired and was claimed
//! again elsewhere is never settled twice.

use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::types::PgInterval;
use time::OffsetDateTime;
use uuid::Uuid;

use super::status::OutboxStatus;
use crate::webengage::OperationKind;

/// The columns every insert of new outbox rows writes, in this order (ingest's batch
/// and a re-map); the rest take their defaults.
pub(crate) const INSERT_COLUMNS: &str =
    "request_id, inbound_id, source, rule, kind, user_id, body, mapping_hash";

/// A full outbox row, as support queries and tests read it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub request_id: Uuid,
    pub inbound_id: Option<i64>,
    pub source: String,
    pub rule: String,
    pub kind: OperationKind,
    pub user_id: Option<String>,
    pub body: Value,
    pub mapping_hash: Option<String>,
    pub status: OutboxStatus,
    pub attempts: i32,
    pub next_attempt_at: OffsetDateTime,
    pub lease_until: Option<OffsetDateTime>,
    pub lease_token: Option<Uuid>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
}

/// What the worker needs of a row it has claimed.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ClaimedRow {
    pub id: i64,
    pub request_id: Uuid,
    pub kind: OperationKind,
    pub user_id: Option<String>,
    pub body: Value,
    /// Attempts charged before this one.
    pub attempts: i32,
    pub created_at: OffsetDateTime,
    pub lease_token: Uuid,
    /// The webhook request that stored the row (`inbound_records.request_id`), so the
    /// worker's logs can be joined to the request's.
    pub inbound_request_id: Option<String>,
}

impl ClaimedRow {
    pub fn lease(&self) -> Lease {
        Lease {
            id: self.id,
            token: self.lease_token,
        }
    }
}

/// The right to settle one claimed row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub id: i64,
    pub token: Uuid,
}

/// Postgres intervals are microseconds; a `Duration` with nanoseconds would not encode.
pub(crate) fn interval(d: Duration) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
    }
}

/// Which due rows a claim takes: the worker claims first attempts and retries
/// separately, so a retry storm cannot take every slot from fresh rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Any,
    /// Rows never tried (`attempts = 0`; a 429 or a pause charges nothing).
    Fresh,
    /// Rows that failed before.
    Retries,
}

/// Claims up to `limit` due rows of any kind; see `claim_due_of`.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    lease: Duration,
) -> Result<Vec<ClaimedRow>, sqlx::Error> {
    claim_due_of(pool, limit, lease, Due::Any, None).await
}

/// Claims up to `limit` due rows of the `which` sort (and of `kind`, when given) for
/// `lease`, all under one fresh token.
///
/// A row is skipped while an earlier row of the same user is still pending or in
/// flight, so one user's operations reach WebEngage in order; rows without a user have
/// no ordering constraint. `SKIP LOCKED` lets many workers claim side by side.
pub async fn claim_due_of(
    pool: &PgPool,
    limit: i64,
    lease: Duration,
    which: Due,
    kind: Option<OperationKind>,
) -> Result<Vec<ClaimedRow>, sqlx::Error> {
    let token = Uuid::new_v4();
    let sql = claim_sql(which, kind.is_some());
    let mut query = sqlx::query_as(&sql)
        .bind(limit)
        .bind(interval(lease))
        .bind(token);
    if let Some(kind) = kind {
        query = query.bind(kind);
    }
    query
        .fetch_all(pool)
        .await
        .map(|mut rows: Vec<ClaimedRow>| {
            // RETURNING does not keep the subquery's order.
            rows.sort_by_key(|r| r.id);
            rows
        })
}

/// `PREPARE name` of the worker's claim of one kind, with the parameter types
/// `claim_due_of` binds: so that `examples/claim_explain.rs` and the plan test explain
/// the statement the worker runs, not a copy.
pub fn prepare_claim(name: &str, which: Due) -> String {
    format!(
        "PREPARE {name} (int8, interval, uuid, operation_kind) AS {}",
        claim_sql(which, true)
    )
}

/// The claim statement of `claim_due_of`, with parameters `$1` limit, `$2` lease,
/// `$3` token and, `with_kind`, `$4` kind.
fn claim_sql(which: Due, with_kind: bool) -> String {
    // Literal predicates (not `$n IS NULL OR …`), so the planner can use the partial
    // claim indexes even with a generic plan: a retry claim must not scan every fresh row.
    let attempts = match which {
        Due::Any => "",
        Due::Fresh => "AND o.attempts = 0",
        Due::Retries => "AND o.attempts > 0",
    };
    // One kind, written as a range and ordered by (kind, id): the same rows in the same
    // order as `kind = $4 ORDER BY id`, but only the partial claim indexes on
    // (kind, id) give that order. With `=` the planner also weighs the primary key (it
    // knows `kind` is constant, so the order by id is all that is left), and when its
    // statistics are older than a drain it picks it and walks every row delivered
    // since: 900,000 rows, 0.6 s a claim (BENCHMARKS.md, "Claim").
    let (of_kind, order) = if with_kind {
        ("AND o.kind >= $4 AND o.kind <= $4", "o.kind, o.id")
    } else {
        ("", "o.id")
    };
    // `= ANY(ARRAY(…))` runs the subquery once and fetches its rows by primary key;
    // `IN (…)` let a generic plan, which cannot know the LIMIT, hash the subquery and
    // scan the whole table to find its rows.
    format!(
        "UPDATE outbox SET status = 'in_flight', lease_until = now() + $2, lease_token = $3, updated_at = now()
         WHERE id = ANY(ARRAY(
             SELECT o.id FROM outbox o
             WHERE o.status = 'pending' AND o.next_attempt_at <= now() {attempts} {of_kind}
               AND NOT EXISTS (
                   SELECT 1 FROM outbox e
                   WHERE e.user_id = o.user_id AND e.id < o.id AND e.status IN ('pending', 'in_flight'))
             ORDER BY {order}
             FOR UPDATE SKIP LOCKED
             LIMIT $1))
         RETURNING id, request_id, kind, user_id, body, attempts,
                   -- A replayed row gets a fresh BRIDGE_RETRY_MAX_AGE budget.
                   COALESCE(replayed_at, created_at) AS created_at, lease_token,
                   (SELECT i.request_id FROM inbound_records i WHERE i.id = outbox.inbound_id)
                     AS inbound_request_id"
    )
}

/// How long until the next row could be claimed (zero when one is due now), or `None`
/// when nothing is waiting. Rows held back by an earlier row of their user don't count:
/// that earlier row settling is what wakes the worker for them. Nor do fresh rows never
/// put off (`next_attempt_at = created_at`): they were due when they were inserted, so
/// the claim that just ran took them, and a newer one comes with a NOTIFY. That keeps
/// them out of the `outbox_due` index, which the ingest path then never writes.
pub async fn next_due_in(pool: &PgPool) -> Result<Option<Duration>, sqlx::Error> {
    let secs: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM (min(o.next_attempt_at) - now()))::float8 FROM outbox o
         WHERE o.status = 'pending' AND o.next_attempt_at > o.created_at
           AND NOT EXISTS (
               SELECT 1 FROM outbox e
               WHERE e.user_id = o.user_id AND e.id < o.id AND e.status IN ('pending', 'in_flight'))",
    )
    .fetch_one(pool)
    .await?;
    Ok(secs.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

/// The row reached WebEngage. Returns false when the lease was no longer ours.
pub async fn mark_delivered(pool: &PgPool, lease: Lease) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = now(),
             last_error = NULL, lease_until = NULL, lease_token = NULL, updated_at = now()
         WHERE id = $1 AND lease_token = $2 AND status = 'in_flight'",
    )
    .bind(lease.id)
    .bind(lease.token)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `mark_delivered` for every row of a bulk call in one statement. Returns the ids
/// that were still ours to settle.
pub async fn mark_delivered_many(pool: &PgPool, leases: &[Lease]) -> Result<Vec<i64>, sqlx::Error> {
    let ids: Vec<i64> = leases.iter().map(|l| l.id).collect();
    let tokens: Vec<Uuid> = leases.iter().map(|l| l.token).collect();
    sqlx::query_scalar(
        "UPDATE outbox o SET status = 'delivered', attempts = attempts + 1, delivered_at = now(),
             last_error = NULL, lease_until = NULL, lease_token = NULL, updated_at = now()
         FROM UNNEST($1::int8[], $2::uuid[]) AS l(id, token)
         WHERE o.id = l.id AND o.lease_token = l.token AND o.status = 'in_flight'
         RETURNING o.id",
    )
    .bind(&ids)
    .bind(&tokens)
    .fetch_all(pool)
    .await
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

/// The row will never be delivered (rejected by WebEngage, or too old to keep trying).
pub async fn mark_dead(pool: &PgPool, lease: Lease, error: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE outbox SET status = 'dead', attempts = attempts + 1, last_error = $3,
             lease_until = NULL, lease_token = NULL, updated_at = now()
         WHERE id = $1 AND lease_token = $2 AND status = 'in_flight'",
    )
    .bind(lease.id)
    .bind(lease.token)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
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

/// Deletes delivered rows older than `older_than`, `batch` rows per statement so no
/// statement locks much at once, together with their inbound records once no outbox
/// row refers to them. Returns the number of outbox rows deleted.
pub async fn purge_delivered(
    pool: &PgPool,
    older_than: Duration,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        // Every part of one statement sees the same snapshot, so the inbound check must
        // ignore the rows this very statement deletes. Data-modifying CTEs always run,
        // read or not.
        let deleted: i64 = sqlx::query_scalar(
            "WITH gone AS (
                 DELETE FROM outbox WHERE id IN (
                     SELECT id FROM outbox
                     WHERE status = 'delivered' AND delivered_at < now() - $1
                     ORDER BY id LIMIT $2)
                 RETURNING id, inbound_id),
             orphans AS (
                 DELETE FROM inbound_records i
                 WHERE i.id IN (SELECT inbound_id FROM gone WHERE inbound_id IS NOT NULL)
                   AND NOT EXISTS (
                       SELECT 1 FROM outbox o
                       WHERE o.inbound_id = i.id AND o.id NOT IN (SELECT id FROM gone))
                 RETURNING i.id)
             SELECT count(*) FROM gone",
        )
        .bind(interval(older_than))
        .bind(batch)
        .fetch_one(pool)
        .await?;
        total += deleted as u64;
        if deleted < batch {
            return Ok(total);
        }
    }
}

/// One row by id.
pub async fn get(pool: &PgPool, id: i64) -> Result<Option<OutboxRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}
