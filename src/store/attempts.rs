//! The history of every WebEngage call made for an outbox row: what support staff read
//! when a lead "didn't arrive".

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// Longest response excerpt kept per attempt: enough for WebEngage's error message,
/// not enough to turn the table into a copy of every response.
pub use crate::webengage::client::EXCERPT_LIMIT;
use crate::webengage::client::truncate;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptRow {
    pub id: i64,
    pub outbox_id: i64,
    pub attempted_at: OffsetDateTime,
    pub http_status: Option<i32>,
    pub outcome: String,
    pub latency_ms: i32,
    pub response_excerpt: Option<String>,
    /// The `x-request-id` sent (the row's own id, or the batch's for a bulk call).
    pub request_id: Uuid,
}

/// One attempt, about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttempt<'a> {
    pub outbox_id: i64,
    pub request_id: Uuid,
    pub http_status: Option<i32>,
    pub outcome: &'a str,
    pub latency_ms: i32,
    pub response_excerpt: Option<&'a str>,
}

pub async fn record_attempt(pool: &PgPool, attempt: &NewAttempt<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO delivery_attempts (outbox_id, request_id, http_status, outcome, latency_ms, response_excerpt)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(attempt.outbox_id)
    .bind(attempt.request_id)
    .bind(attempt.http_status)
    .bind(attempt.outcome)
    .bind(attempt.latency_ms)
    .bind(attempt.response_excerpt.map(|e| truncate(e, EXCERPT_LIMIT)))
    .execute(pool)
    .await
    .map(|_| ())
}

/// Records the attempts of a whole bulk call in one statement.
pub async fn record_attempts(
    pool: &PgPool,
    attempts: &[NewAttempt<'_>],
) -> Result<(), sqlx::Error> {
    if attempts.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = attempts.iter().map(|a| a.outbox_id).collect();
    let request_ids: Vec<Uuid> = attempts.iter().map(|a| a.request_id).collect();
    let statuses: Vec<Option<i32>> = attempts.iter().map(|a| a.http_status).collect();
    let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome).collect();
    let latencies: Vec<i32> = attempts.iter().map(|a| a.latency_ms).collect();
    let excerpts: Vec<Option<&str>> = attempts
        .iter()
        .map(|a| a.response_excerpt.map(|e| truncate(e, EXCERPT_LIMIT)))
        .collect();
    sqlx::query(
        "INSERT INTO delivery_attempts (outbox_id, request_id, http_status, outcome, latency_ms, response_excerpt)
         SELECT * FROM UNNEST($1::int8[], $2::uuid[], $3::int4[], $4::text[], $5::int4[], $6::text[])",
    )
    .bind(&ids)
    .bind(&request_ids)
    .bind(&statuses)
    .bind(&outcomes)
    .bind(&latencies)
    .bind(&excerpts)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Every attempt of one row, oldest first.
pub async fn list_for_outbox(
    pool: &PgPool,
    outbox_id: i64,
) -> Result<Vec<AttemptRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, outbox_id, attempted_at, http_status, outcome, latency_ms, response_excerpt, request_id
         FROM delivery_attempts WHERE outbox_id = $1 ORDER BY id",
    )
    .bind(outbox_id)
    .fetch_all(pool)
    .await
}
