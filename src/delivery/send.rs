//! Delivering claimed rows: build the request, call WebEngage, record the attempt,
//! settle the row with its lease. No database transaction is open during the call.

use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use uuid::Uuid;

use tracing::Instrument;

use super::backoff;
use super::client::{CallResult, Endpoint, Outcome, WebEngageClient};
use super::limiter::Limiter;
use super::observe;
use super::transient::{retry_transient, settle_deadline};
use crate::config::DeliverySettings;
use crate::store::attempts::{self, NewAttempt};
use crate::store::destination;
use crate::store::outbox::{self, ClaimedRow};
use crate::webengage::OperationKind;

/// What the jobs share: the pool, the client, the settings, the limits.
pub struct Shared {
    pub pool: PgPool,
    pub client: WebEngageClient,
    pub settings: DeliverySettings,
    pub limiter: Limiter,
    /// One permit per WebEngage call in flight (`BRIDGE_WORKER_CONCURRENCY`).
    pub calls: Semaphore,
}

impl Shared {
    /// One call for the rows `outbox_ids`, within the concurrency and the endpoint's
    /// quota, in a span naming the rows and the `x-request-id` (bodies only at debug).
    pub async fn call(
        &self,
        endpoint: &Endpoint,
        request_id: Uuid,
        outbox_ids: &[i64],
        body: &Value,
    ) -> CallResult {
        let span = tracing::info_span!(
            "webengage_call",
            endpoint = endpoint.name(),
            %request_id,
            outbox_ids = ?outbox_ids,
            status = tracing::field::Empty,
        );
        async {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = self.calls.acquire().await.ok();
            self.limiter.ready(endpoint).await;
            tracing::debug!(%body, "sending");
            let result = self.client.send(endpoint, request_id, body).await;
            self.limiter.observe(endpoint, &result);
            observe::response(endpoint, &result);
            if let Some(status) = result.http_status {
                tracing::Span::current().record("status", status);
            }
            tracing::debug!(outcome = result.outcome.label(), response = ?result.excerpt, "WebEngage answer");
            result
        }
        .instrument(span)
        .await
    }
}

/// What a finished job tells the worker about the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// WebEngage processed the request (2xx or 400): the credentials work.
    Accepted,
    /// 401/404: the destination is now paused.
    Refused,
    /// Rate limit, transient failure, or nothing sent: says nothing about credentials.
    Inconclusive,
}

/// The endpoint and exact body for one row. Transactions carry their campaign id in
/// the URL, not the body.
pub fn request_for(row: &ClaimedRow) -> Result<(Endpoint, Value), String> {
    match row.kind {
        OperationKind::User => Ok((Endpoint::Users, row.body.clone())),
        OperationKind::Event => Ok((Endpoint::Events, row.body.clone())),
        OperationKind::Transaction => {
            let mut body = row.body.clone();
            let campaign = body
                .as_object_mut()
                .and_then(|o| o.remove("campaignId"))
                .and_then(|v| v.as_str().map(str::to_owned))
                .filter(|c| {
                    !c.is_empty()
                        && c.chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || "-_~".contains(ch))
                });
            match campaign {
                Some(campaign_id) => Ok((Endpoint::Transaction { campaign_id }, body)),
                None => Err("transaction without a usable campaignId".to_owned()),
            }
        }
    }
}

/// Sends one row and settles it. A transient database error is retried for a while
/// (`transient`); after that, database errors are logged, not returned: the row's
/// lease then expires and the row is tried again.
pub async fn deliver_row(shared: &Shared, row: ClaimedRow) -> Verdict {
    let (endpoint, body) = match request_for(&row) {
        Ok(request) => request,
        Err(problem) => return settle_unsendable(shared, &row, &problem).await,
    };
    let result = shared
        .call(&endpoint, row.request_id, &[row.id], &body)
        .await;
    let until = settle_deadline();
    record(
        &shared.pool,
        std::slice::from_ref(&row),
        row.request_id,
        &result,
        until,
    )
    .await;
    let retry_at =
        OffsetDateTime::now_utc() + backoff::retry_delay(&shared.settings, row.attempts + 1);
    let settled = retry_transient(until, "settling a row", || {
        settle(shared, &row, &result.outcome, retry_at)
    })
    .await;
    match settled {
        Ok(verdict) => verdict,
        Err(e) => {
            tracing::warn!(outbox_id = row.id, error = %e, "could not settle a row; its lease will expire and it will be sent again");
            Verdict::Inconclusive
        }
    }
}

/// Records one attempt for each of `rows`, sent together as `sent_id` (a row's own id,
/// or its batch's), in one statement, retrying transient errors until `until`.
pub async fn record(
    pool: &PgPool,
    rows: &[ClaimedRow],
    sent_id: Uuid,
    result: &CallResult,
    until: Instant,
) {
    let attempts: Vec<NewAttempt<'_>> = rows
        .iter()
        .map(|row| NewAttempt {
            outbox_id: row.id,
            request_id: sent_id,
            http_status: result.http_status.map(i32::from),
            outcome: result.outcome.label(),
            latency_ms: result.latency_ms(),
            response_excerpt: result.excerpt.as_deref(),
        })
        .collect();
    let recorded = retry_transient(until, "recording delivery attempts", || {
        attempts::record_attempts(pool, &attempts)
    })
    .await;
    if let Err(e) = recorded {
        tracing::warn!(rows = rows.len(), error = %e, "could not record delivery attempts");
    }
}

/// A row that cannot become a request is dead at once, with an attempt saying why.
async fn settle_unsendable(shared: &Shared, row: &ClaimedRow, problem: &str) -> Verdict {
    let attempt = NewAttempt {
        outbox_id: row.id,
        request_id: row.request_id,
        http_status: None,
        outcome: "invalid",
        latency_ms: 0,
        response_excerpt: Some(problem),
    };
    let until = settle_deadline();
    let recorded = retry_transient(until, "recording delivery attempts", || {
        attempts::record_attempt(&shared.pool, &attempt)
    })
    .await;
    let settled = retry_transient(until, "settling a row", || {
        outbox::mark_dead(&shared.pool, row.lease(), problem)
    })
    .await;
    if let Err(e) = recorded.and(settled.map(|_| ())) {
        tracing::warn!(outbox_id = row.id, error = %e, "could not settle an unsendable row");
    }
    observe::dead();
    tracing::warn!(
        outbox_id = row.id,
        kind = row.kind.as_str(),
        "row is dead: {problem}"
    );
    Verdict::Inconclusive
}

/// Settles one row according to WebEngage's answer; a transient failure is retried
/// at `retry_at` (the rows of one bulk call share it, so they come back together).
/// Safe to run again after a database error (callers do, through `retry_transient`):
/// every write is guarded by the lease, and pausing the destination is idempotent.
pub async fn settle(
    shared: &Shared,
    row: &ClaimedRow,
    outcome: &Outcome,
    retry_at: OffsetDateTime,
) -> Result<Verdict, sqlx::Error> {
    let (pool, lease) = (&shared.pool, row.lease());
    let (settled, verdict) = match outcome {
        Outcome::Delivered => {
            let settled = outbox::mark_delivered(pool, lease).await?;
            if settled {
                observe::delivered(row.created_at);
            }
            (settled, Verdict::Accepted)
        }
        Outcome::Rejected(message) => {
            tracing::warn!(
                outbox_id = row.id,
                kind = row.kind.as_str(),
                "WebEngage rejected a row; it is dead"
            );
            let settled = outbox::mark_dead(pool, lease, message).await?;
            if settled {
                observe::dead();
            }
            (settled, Verdict::Accepted)
        }
        Outcome::Unauthorized(message) | Outcome::NotFound(message) => {
            pause_destination(shared, outcome, message).await?;
            (outbox::release(pool, lease, None).await?, Verdict::Refused)
        }
        Outcome::RateLimited => {
            tracing::info!(
                outbox_id = row.id,
                "WebEngage rate limit reached; waiting for the next window"
            );
            let next_window = backoff::next_window(shared.settings.rate_window);
            (
                outbox::release(pool, lease, Some(next_window)).await?,
                Verdict::Inconclusive,
            )
        }
        Outcome::Transient(message) => (
            retry_or_give_up(shared, row, message, retry_at).await?,
            Verdict::Inconclusive,
        ),
    };
    if !settled {
        tracing::warn!(
            outbox_id = row.id,
            "lease lost before settling; another worker owns the row now"
        );
    }
    Ok(verdict)
}

/// A transient failure: retry with backoff, unless the row is past the age limit.
async fn retry_or_give_up(
    shared: &Shared,
    row: &ClaimedRow,
    message: &str,
    retry_at: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let settings = &shared.settings;
    let age = OffsetDateTime::now_utc() - row.created_at;
    if age > settings.retry_max_age {
        tracing::warn!(
            outbox_id = row.id,
            attempts = row.attempts + 1,
            "giving up on a row past the retry age limit"
        );
        let why = format!(
            "gave up after {} attempts over {}: {message}",
            row.attempts + 1,
            humantime::format_duration(Duration::from_secs(age.whole_seconds().max(0) as u64))
        );
        let settled = outbox::mark_dead(&shared.pool, row.lease(), &why).await?;
        if settled {
            observe::dead();
        }
        return Ok(settled);
    }
    tracing::info!(
        outbox_id = row.id,
        attempts = row.attempts + 1,
        retry_at = %retry_at,
        "delivery failed; will retry"
    );
    outbox::schedule_retry(&shared.pool, row.lease(), retry_at, message, true).await
}

/// 401/404: nothing can be delivered until someone fixes the settings.
async fn pause_destination(
    shared: &Shared,
    outcome: &Outcome,
    message: &str,
) -> Result<(), sqlx::Error> {
    let hint = match outcome {
        Outcome::NotFound(_) => {
            "check WEBENGAGE_LICENSE_CODE and the data center or WEBENGAGE_BASE_URL"
        }
        _ => "check WEBENGAGE_API_KEY and its Account Management and Update Data permissions",
    };
    let reason = format!("WebEngage refused delivery ({message}); {hint}");
    let next_probe = OffsetDateTime::now_utc() + shared.settings.pause_probe;
    destination::pause(&shared.pool, &reason, Some(next_probe)).await?;
    observe::paused(true);
    Ok(())
}
