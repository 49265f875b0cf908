//! Carrying out the policy's fates: the attempt history, the rows' new states, and the
//! destination's (paused, degraded). Each write is retried through a short Postgres
//! outage (`transient`) and guarded by the rows' leases.

use tokio::time::Instant;

use super::job::{Context, Record, Report};
use super::observe;
use super::policy::{Answer, Fate};
use super::transient::retry_transient;
use crate::store::attempts::{self, NewAttempt};
use crate::store::destination;
use crate::store::outbox::{ClaimedRow, Lease};
use crate::store::settle::{self as rows, Delivered};
use crate::webengage::client::CallReport;
use uuid::Uuid;

/// Records one attempt for each of `carried`, sent together as `sent_id`, in one
/// statement.
pub async fn record_attempts(
    ctx: &Context,
    carried: &[&ClaimedRow],
    sent_id: Uuid,
    answer: &Answer,
    report: &CallReport,
    until: Instant,
) {
    let attempts: Vec<NewAttempt<'_>> = carried
        .iter()
        .map(|row| NewAttempt {
            outbox_id: row.id,
            request_id: sent_id,
            http_status: report.http_status.map(i32::from),
            outcome: answer.label(),
            latency_ms: report.latency_ms(),
            response_excerpt: report.excerpt.as_deref(),
        })
        .collect();
    let recorded = retry_transient(until, "recording delivery attempts", || {
        attempts::record_attempts(&ctx.pool, &attempts)
    })
    .await;
    if let Err(e) = recorded {
        tracing::warn!(rows = carried.len(), error = %e, "could not record delivery attempts");
    }
}

/// Rows that cannot become a request are dead at once, with an attempt saying why.
pub async fn unsendable(ctx: &Context, dead: &[&ClaimedRow], problem: &str) -> Report {
    let until = super::transient::settle_deadline();
    let mut report = Report::default();
    for row in dead {
        let attempt = NewAttempt {
            outbox_id: row.id,
            request_id: row.request_id,
            http_status: None,
            outcome: "invalid",
            latency_ms: 0,
            response_excerpt: Some(problem),
        };
        let recorded = retry_transient(until, "recording delivery attempts", || {
            attempts::record_attempt(&ctx.pool, &attempt)
        })
        .await;
        let settled = retry_transient(until, "settling a row", || {
            rows::mark_dead(&ctx.pool, row.lease(), problem)
        })
        .await;
        match recorded.and(settled) {
            Ok(true) => {
                observe::dead();
                report.dead += 1;
            }
            Ok(false) => lease_lost(row.id),
            Err(e) => {
                tracing::warn!(outbox_id = row.id, error = %e, "could not settle an unsendable row")
            }
        }
        tracing::warn!(
            outbox_id = row.id,
            kind = row.kind.as_str(),
            "row is dead: {problem}"
        );
    }
    report
}

/// Back to pending now, uncharged: rows that were carried but whose fate is their
/// head's (merged user updates), or that a job did not get to.
pub async fn release(ctx: &Context, released: &[ClaimedRow], until: Instant) -> Report {
    if released.is_empty() {
        return Report::default();
    }
    let leases: Vec<Lease> = released.iter().map(ClaimedRow::lease).collect();
    match retry_transient(until, "releasing rows", || {
        rows::release_many(&ctx.pool, &leases)
    })
    .await
    {
        Ok(n) => Report {
            pending: n as usize,
            ..Report::default()
        },
        Err(e) => {
            tracing::warn!(rows = leases.len(), error = %e, "could not release rows; their leases will expire");
            Report::default()
        }
    }
}

/// Settles each record as its fate says (`fates[i]` is `records[i]`'s): the head takes
/// the fate, the user updates merged into it are delivered with it or go back to the
/// queue uncharged. `probe` says the call probed a paused or degraded destination.
pub async fn carry_out(
    ctx: &Context,
    records: &[Record],
    fates: &[Fate],
    probe: bool,
    until: Instant,
) -> Report {
    let mut report = delivered(ctx, records, fates, until).await;
    let mut destination_told = false;
    for (record, fate) in records.iter().zip(fates) {
        if *fate == Fate::Delivered {
            continue;
        }
        let head = record.head();
        let settled = retry_transient(until, "settling a row", || {
            settle_head(ctx, head, fate, probe, !destination_told)
        })
        .await;
        destination_told |= matches!(fate, Fate::Degrade { .. } | Fate::Pause { .. });
        match settled {
            Ok(true) => match fate {
                Fate::Dead { .. } => report.dead += 1,
                _ => report.pending += 1,
            },
            Ok(false) => lease_lost(head.id),
            Err(e) => {
                tracing::warn!(outbox_id = head.id, error = %e, "could not settle a row; its lease will expire and it will be sent again")
            }
        }
        report.add(release(ctx, record.followers(), until).await);
    }
    report
}

/// The delivered records, every row of them in one statement.
async fn delivered(ctx: &Context, records: &[Record], fates: &[Fate], until: Instant) -> Report {
    let taken: Vec<&Record> = records
        .iter()
        .zip(fates)
        .filter(|(_, fate)| **fate == Fate::Delivered)
        .map(|(record, _)| record)
        .collect();
    if taken.is_empty() {
        return Report::default();
    }
    let settles: Vec<Delivered> = taken
        .iter()
        .flat_map(|record| {
            let head = record.head().id;
            record.rows().iter().map(move |row| Delivered {
                lease: row.lease(),
                coalesced_into: (row.id != head).then_some(head),
            })
        })
        .collect();
    let settled = retry_transient(until, "settling delivered rows", || {
        rows::mark_delivered_many(&ctx.pool, &settles)
    })
    .await;
    match settled {
        Ok(settled) => {
            for row in taken.iter().flat_map(|r| r.rows()) {
                if settled.contains(&row.id) {
                    ctx.delivered
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    observe::delivered(row.created_at);
                }
            }
            if settled.len() < settles.len() {
                tracing::warn!(
                    rows = settles.len() - settled.len(),
                    "leases lost before settling; another worker owns those rows now"
                );
            }
            Report {
                delivered: settled.len(),
                ..Report::default()
            }
        }
        Err(e) => {
            tracing::warn!(rows = settles.len(), error = %e, "could not settle delivered rows; their leases will expire and they will be sent again");
            Report::default()
        }
    }
}

/// One head's fate. Safe to run again after a database error: every row write is
/// guarded by the lease, and pausing or degrading the destination is idempotent.
/// Returns false when the lease was no longer ours.
async fn settle_head(
    ctx: &Context,
    head: &ClaimedRow,
    fate: &Fate,
    probe: bool,
    tell_destination: bool,
) -> Result<bool, sqlx::Error> {
    let (pool, lease) = (&ctx.pool, head.lease());
    match fate {
        Fate::Delivered | Fate::Split => rows::release(pool, lease, None).await,
        Fate::Dead { why } => {
            tracing::warn!(
                outbox_id = head.id,
                kind = head.kind.as_str(),
                "row is dead: {why}"
            );
            let settled = rows::mark_dead(pool, lease, why).await?;
            if settled {
                observe::dead();
            }
            Ok(settled)
        }
        Fate::Retry { at, why } => {
            tracing::info!(outbox_id = head.id, attempts = head.attempts + 1, retry_at = %at, "delivery failed; will retry");
            rows::schedule_retry(pool, lease, *at, why, true).await
        }
        Fate::Degrade { at, why } => {
            if tell_destination {
                destination::degrade(pool, why, probe, ctx.probe_backoff()).await?;
                observe::degraded(true);
                tracing::warn!("delivery degraded: {why}");
            }
            rows::schedule_retry(pool, lease, *at, why, true).await
        }
        Fate::Pause { why } => {
            if tell_destination {
                let next_probe = time::OffsetDateTime::now_utc() + ctx.pause_probe;
                destination::pause(pool, why, Some(next_probe)).await?;
                observe::paused(true);
            }
            rows::release(pool, lease, None).await
        }
        Fate::Wait { at } => {
            tracing::info!(outbox_id = head.id, until = %at, "WebEngage rate limit reached; waiting");
            rows::release(pool, lease, Some(*at)).await
        }
    }
}

fn lease_lost(id: i64) {
    tracing::warn!(
        outbox_id = id,
        "lease lost before settling; another worker owns the row now"
    );
}
