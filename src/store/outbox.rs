//! The outbox: claiming due rows under a lease (`settle` settles them with it).
//!
//! A claim commits at once (no transaction is held across a WebEngage call).
//!
//! Per-user queues: each user's first open row is its `head`, and only heads are claim
//! candidates, so a claim never walks the rows queued behind a head that is in flight
//! or waiting for a retry. A new row is a head when its user has no open row; the check
//! locks the open row it finds (`FOR SHARE`), and closing a row (`settle`) promotes the
//! next one in a statement of its own after the closing one. Whichever of an insert and
//! a settle of the same user takes the row lock first, the other sees its result: a
//! new row is never left behind a head that is gone. Two heads of one user can happen
//! (two requests inserting at once); the claim still checks for an earlier open row, so
//! order holds, and the second is simply not claimed until the first is done.

use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::types::PgInterval;
use time::OffsetDateTime;
use uuid::Uuid;

use super::status::OutboxStatus;
use crate::webengage::OperationKind;

/// The columns every insert of new outbox rows writes, in this order (ingest's batch
/// and a re-map); the rest take their defaults. `head` comes from `head_of_new_row`;
/// `trace_context` is the webhook span's `traceparent` (NULL without traces).
pub(crate) const INSERT_COLUMNS: &str =
    "request_id, inbound_id, source, rule, kind, user_id, body, mapping_hash, head, trace_context";

/// The `head` of a new row of user `user` (a SQL expression): true without a user, or
/// for the statement's first row of the user (`first`) when the user has no open row.
/// The open row found is locked (see the module doc).
pub(crate) fn head_of_new_row(user: &str, first: &str) -> String {
    format!(
        "({user} IS NULL OR (({first}) AND NOT EXISTS (
             SELECT 1 FROM outbox e WHERE e.user_id = {user} AND e.status IN ('pending', 'in_flight')
             FOR SHARE OF e)))"
    )
}

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
    pub replayed_at: Option<OffsetDateTime>,
    /// Whether the row is its user's head (see the module doc).
    pub head: bool,
    /// The row whose record carried this user update (coalescing).
    pub coalesced_into: Option<i64>,
    /// The `traceparent` of the webhook that stored the row, when traces are exported.
    pub trace_context: Option<String>,
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
    /// When the row was accepted, or replayed by support.
    pub created_at: OffsetDateTime,
    /// Where its age for `BRIDGE_RETRY_MAX_AGE` counts from: `created_at`, moved on by
    /// the time the destination was paused or degraded since.
    pub age_from: OffsetDateTime,
    pub lease_token: Uuid,
    /// The webhook request that stored the row (`inbound_records.request_id`), so the
    /// worker's logs can be joined to the request's.
    pub inbound_request_id: Option<String>,
    /// The webhook span's `traceparent`: the WebEngage call links to it.
    pub trace_context: Option<String>,
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

/// The columns a claim returns (`ClaimedRow`), from the `outbox` rows it updated.
const CLAIMED: &str = "id, request_id, kind, user_id, body, attempts,
     -- A replayed row gets a fresh BRIDGE_RETRY_MAX_AGE budget.
     COALESCE(replayed_at, created_at) AS created_at,
     COALESCE(replayed_at, created_at) + (
         SELECT COALESCE(sum(COALESCE(d.ended_at, now()) - GREATEST(d.started_at, COALESCE(outbox.replayed_at, outbox.created_at))), interval '0')
         FROM destination_outages d
         WHERE COALESCE(d.ended_at, now()) > COALESCE(outbox.replayed_at, outbox.created_at)) AS age_from,
     lease_token, trace_context,
     (SELECT i.request_id FROM inbound_records i WHERE i.id = outbox.inbound_id) AS inbound_request_id";

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
    // One kind, written as a range and ordered by (kind, …): the same rows in the same
    // order as `kind = $4 ORDER BY …`, but only the partial claim indexes on
    // (kind, …) give that order. With `=` the planner also weighs the primary key (it
    // knows `kind` is constant, so the order by id is all that is left), and when its
    // statistics are older than a drain it picks it and walks every row delivered
    // since: 900,000 rows, 0.6 s a claim (BENCHMARKS.md, "Claim"). Retries go by due
    // time, so the walk stops at the first one not due yet.
    // Retries stay `kind = $4`: with a range on the index's first column, the due-time
    // bound does not end the scan, and with many retries waiting and none due a claim
    // read every waiting entry of its kind (250,000 of them: 12 ms). No other index
    // gives their order (next_attempt_at, id), so equality cannot mislead the planner.
    let of_kind = match (with_kind, which) {
        (false, _) => "",
        (true, Due::Retries) => "AND o.kind = $4",
        (true, _) => "AND o.kind >= $4 AND o.kind <= $4",
    };
    // Live traffic first: among fresh rows, webhook rows (priority 0) before imported
    // ones (1), so a lead created during a large import is not queued behind it. Only
    // heads are candidates, so one user's rows still go in order.
    let order = match (which, with_kind) {
        (Due::Retries, true) => "o.kind, o.next_attempt_at, o.id",
        (Due::Retries, false) => "o.next_attempt_at, o.id",
        (_, true) => "o.kind, o.priority, o.id",
        (_, false) => "o.priority, o.id",
    };
    // `= ANY(ARRAY(…))` runs the subquery once and fetches its rows by primary key;
    // `IN (…)` let a generic plan, which cannot know the LIMIT, hash the subquery and
    // scan the whole table to find its rows.
    format!(
        "UPDATE outbox SET status = 'in_flight', lease_until = now() + $2, lease_token = $3, updated_at = now()
         WHERE id = ANY(ARRAY(
             SELECT o.id FROM outbox o
             WHERE o.status = 'pending' AND o.head AND o.next_attempt_at <= now() {attempts} {of_kind}
               AND NOT EXISTS (
                   SELECT 1 FROM outbox e
                   WHERE e.user_id = o.user_id AND e.id < o.id AND e.status IN ('pending', 'in_flight'))
             ORDER BY {order}
             FOR UPDATE SKIP LOCKED
             LIMIT $1))
         RETURNING {CLAIMED}"
    )
}

/// Claims, under `lease` and `token` (the claim's), the user updates queued right
/// behind each of `heads` (claimed user rows): each user's next open rows in order, up
/// to `max` of them, while they are pending user rows. Coalescing merges them into the
/// head's record; an event or a transaction ends the run, so nothing is reordered.
pub async fn claim_followers(
    pool: &PgPool,
    heads: &[&ClaimedRow],
    max: i64,
    lease: Duration,
) -> Result<Vec<ClaimedRow>, sqlx::Error> {
    let heads: Vec<&ClaimedRow> = heads
        .iter()
        .copied()
        .filter(|h| h.kind == OperationKind::User && h.user_id.is_some())
        .collect();
    let Some(first) = heads.first() else {
        return Ok(Vec::new());
    };
    let users: Vec<&str> = heads.iter().filter_map(|h| h.user_id.as_deref()).collect();
    let ids: Vec<i64> = heads.iter().map(|h| h.id).collect();
    let sql = format!(
        "WITH run AS (
             SELECT f.id FROM UNNEST($1::text[], $2::int8[]) AS h(u, id)
             CROSS JOIN LATERAL (
                 SELECT n.id, bool_and(n.kind = 'user' AND n.status = 'pending') OVER (ORDER BY n.id) AS queued
                 FROM (SELECT e.id, e.kind, e.status FROM outbox e
                       WHERE e.user_id = h.u AND e.id > h.id AND e.status IN ('pending', 'in_flight')
                       ORDER BY e.id LIMIT $3) n) f
             WHERE f.queued)
         UPDATE outbox SET status = 'in_flight', lease_until = now() + $4, lease_token = $5, updated_at = now()
         WHERE id IN (SELECT id FROM run) AND status = 'pending'
         RETURNING {CLAIMED}"
    );
    let mut rows: Vec<ClaimedRow> = sqlx::query_as(&sql)
        .bind(&users)
        .bind(&ids)
        .bind(max)
        .bind(interval(lease))
        .bind(first.lease_token)
        .fetch_all(pool)
        .await?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
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
         WHERE o.status = 'pending' AND o.head AND o.next_attempt_at > o.created_at
           AND NOT EXISTS (
               SELECT 1 FROM outbox e
               WHERE e.user_id = o.user_id AND e.id < o.id AND e.status IN ('pending', 'in_flight'))",
    )
    .fetch_one(pool)
    .await?;
    Ok(secs.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

/// One row by id.
pub async fn get(pool: &PgPool, id: i64) -> Result<Option<OutboxRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}
