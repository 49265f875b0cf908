//! Bulk delivery (`WEBENGAGE_BULK`): due user rows and due event rows go through
//! `bulk-users` / `bulk-events`, up to 25 a request, which carries 2.5× the records of
//! single calls within WebEngage's quotas.
//!
//! A claim holds at most one row per user, so a batch never carries two operations of
//! one user and per-user order is kept. WebEngage does not say whether one bad record
//! fails a whole bulk request, so a 400 splits the batch in halves until the bad rows
//! are alone; a lone row then goes through the single endpoint, whose 400 is final.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::{Builder, Uuid};

use super::backoff;
use super::client::{Endpoint, Outcome};
use super::observe;
use super::send::{self, Shared, Verdict};
use super::transient::{retry_transient, settle_deadline};
use crate::store::outbox::{self, ClaimedRow};
use crate::webengage::OperationKind;

/// WebEngage's maximum records per bulk request.
pub const MAX_BATCH: usize = 25;

/// What one task delivers.
#[derive(Debug)]
pub enum Job {
    Single(ClaimedRow),
    /// Rows of one kind (user or event), at most `MAX_BATCH`.
    Batch(Vec<ClaimedRow>),
}

/// Groups claimed rows into jobs: users and events into batches when more than one of
/// the kind is due and bulk is on; everything else one job per row.
pub fn plan(rows: Vec<ClaimedRow>, bulk: bool) -> Vec<Job> {
    if !bulk {
        return rows.into_iter().map(Job::Single).collect();
    }
    let (mut users, mut events, mut jobs) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        match row.kind {
            OperationKind::User => users.push(row),
            OperationKind::Event => events.push(row),
            OperationKind::Transaction => jobs.push(Job::Single(row)),
        }
    }
    for mut group in [users, events] {
        while !group.is_empty() {
            let rest = group.split_off(group.len().min(MAX_BATCH));
            jobs.push(match group.len() {
                1 => Job::Single(group.remove(0)),
                _ => Job::Batch(group),
            });
            group = rest;
        }
    }
    jobs
}

/// The batch's `x-request-id`: derived from its rows' own ids (sorted), so the same rows
/// retried together carry the same id.
pub fn batch_request_id(rows: &[ClaimedRow]) -> Uuid {
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.request_id).collect();
    ids.sort();
    let mut hash = Sha256::new();
    for id in &ids {
        hash.update(id.as_bytes());
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Builder::from_custom_bytes(bytes).into_uuid()
}

/// The bulk endpoint and body for rows of one kind.
pub fn bulk_request(rows: &[ClaimedRow]) -> (Endpoint, Value) {
    let bodies: Vec<Value> = rows.iter().map(|r| r.body.clone()).collect();
    match rows.first().map(|r| r.kind) {
        Some(OperationKind::Event) => (Endpoint::BulkEvents, json!({ "events": bodies })),
        _ => (Endpoint::BulkUsers, json!({ "users": bodies })),
    }
}

/// The stronger of two verdicts: a refusal pauses everything, one acceptance proves
/// the credentials.
pub fn combine(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Verdict::Refused, _) | (_, Verdict::Refused) => Verdict::Refused,
        (Verdict::Accepted, _) | (_, Verdict::Accepted) => Verdict::Accepted,
        _ => Verdict::Inconclusive,
    }
}

pub async fn deliver(shared: &Shared, job: Job) -> Verdict {
    match job {
        Job::Single(row) => send::deliver_row(shared, row).await,
        Job::Batch(rows) => deliver_batch(shared, rows).await,
    }
}

/// Sends a batch; on a 400, its halves, one after the other, down to single rows.
async fn deliver_batch(shared: &Shared, rows: Vec<ClaimedRow>) -> Verdict {
    let mut verdict = Verdict::Inconclusive;
    let mut pending = vec![rows];
    while let Some(mut batch) = pending.pop() {
        if batch.len() == 1 {
            let single = send::deliver_row(shared, batch.remove(0)).await;
            verdict = combine(verdict, single);
            continue;
        }
        let (endpoint, body) = bulk_request(&batch);
        let request_id = batch_request_id(&batch);
        let ids: Vec<i64> = batch.iter().map(|r| r.id).collect();
        let result = shared.call(&endpoint, request_id, &ids, &body).await;
        let until = settle_deadline();
        send::record(&shared.pool, &batch, request_id, &result, until).await;
        if let Outcome::Rejected(_) = result.outcome {
            tracing::info!(rows = batch.len(), %request_id, "bulk call rejected; splitting to find the bad rows");
            let second = batch.split_off(batch.len() / 2);
            pending.push(second);
            pending.push(batch);
            verdict = combine(verdict, Verdict::Accepted);
            continue;
        }
        let settled = settle_batch(shared, &batch, &result.outcome, until).await;
        verdict = combine(verdict, settled);
    }
    verdict
}

/// Settles every row of a batch the same way, with one retry delay for all of them so
/// they come due, and are batched, together again. Transient database errors are
/// retried until `until`, one deadline for the whole batch.
async fn settle_batch(
    shared: &Shared,
    batch: &[ClaimedRow],
    outcome: &Outcome,
    until: Instant,
) -> Verdict {
    if let Outcome::Delivered = outcome {
        return settle_delivered(shared, batch, until).await;
    }
    let most_attempts = batch.iter().map(|r| r.attempts).max().unwrap_or(0);
    let retry_at =
        OffsetDateTime::now_utc() + backoff::retry_delay(&shared.settings, most_attempts + 1);
    let mut verdict = Verdict::Inconclusive;
    for row in batch {
        let settled = retry_transient(until, "settling a row", || {
            send::settle(shared, row, outcome, retry_at)
        })
        .await;
        match settled {
            Ok(v) => verdict = combine(verdict, v),
            Err(e) => {
                tracing::warn!(outbox_id = row.id, error = %e, "could not settle a row; its lease will expire and it will be sent again")
            }
        }
    }
    verdict
}

/// The common case, in one statement for the whole batch.
async fn settle_delivered(shared: &Shared, batch: &[ClaimedRow], until: Instant) -> Verdict {
    let leases: Vec<_> = batch.iter().map(ClaimedRow::lease).collect();
    let settled = retry_transient(until, "settling a batch", || {
        outbox::mark_delivered_many(&shared.pool, &leases)
    })
    .await;
    match settled {
        Ok(settled) => {
            for row in batch.iter().filter(|r| settled.contains(&r.id)) {
                observe::delivered(row.created_at);
            }
            if settled.len() < batch.len() {
                tracing::warn!(
                    rows = batch.len() - settled.len(),
                    "leases lost before settling; another worker owns those rows now"
                );
            }
        }
        Err(e) => {
            tracing::warn!(rows = batch.len(), error = %e, "could not settle a batch; its leases will expire and it will be sent again")
        }
    }
    Verdict::Accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    use OperationKind::{Event, Transaction, User};

    fn row(id: i64, kind: OperationKind) -> ClaimedRow {
        ClaimedRow {
            id,
            request_id: Uuid::from_u128(id as u128),
            kind,
            user_id: Some(format!("u{id}")),
            body: json!({"userId": format!("u{id}")}),
            attempts: 0,
            created_at: OffsetDateTime::UNIX_EPOCH,
            lease_token: Uuid::nil(),
            inbound_request_id: None,
        }
    }

    fn shape(jobs: &[Job]) -> Vec<(char, usize)> {
        jobs.iter()
            .map(|j| match j {
                Job::Single(r) => (r.kind.as_str().chars().next().unwrap(), 1),
                Job::Batch(rows) => (rows[0].kind.as_str().chars().next().unwrap(), rows.len()),
            })
            .collect()
    }

    #[test]
    fn plan_batches_users_and_events_up_to_25() {
        let mut rows: Vec<ClaimedRow> = (0..27).map(|i| row(i, User)).collect();
        rows.push(row(100, Event));
        rows.push(row(101, Transaction));
        rows.push(row(102, Event));
        let jobs = plan(rows, true);
        assert_eq!(shape(&jobs), vec![('t', 1), ('u', 25), ('u', 2), ('e', 2)]);
        assert!(matches!(&jobs[2], Job::Batch(_)));
    }

    #[test]
    fn a_lone_row_or_bulk_off_goes_single() {
        let jobs = plan(vec![row(1, User), row(2, Event)], true);
        assert!(jobs.iter().all(|j| matches!(j, Job::Single(_))));
        let jobs = plan(vec![row(1, User), row(2, User)], false);
        assert_eq!(jobs.len(), 2);
    }

    #[test]
    fn batch_id_ignores_row_order_and_depends_on_the_rows() {
        let (a, b, c) = (row(1, User), row(2, User), row(3, User));
        let ab = batch_request_id(&[a.clone(), b.clone()]);
        assert_eq!(ab, batch_request_id(&[b.clone(), a.clone()]));
        assert_ne!(ab, batch_request_id(&[a, c]));
        assert_eq!(ab.get_version_num(), 8);
    }

    #[test]
    fn bulk_bodies_wrap_the_exact_row_bodies() {
        let (endpoint, body) = bulk_request(&[row(1, Event), row(2, Event)]);
        assert_eq!(endpoint, Endpoint::BulkEvents);
        assert_eq!(
            body,
            json!({"events": [{"userId": "u1"}, {"userId": "u2"}]})
        );
    }
}
