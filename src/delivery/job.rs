//! One job: a record, or a batch of records of one kind, sent to WebEngage, each row's
//! fate decided by the policy, and carried out (`settle`). Owns the types the worker's
//! jobs share: `Context`, `Record`, `Job`, `Report`.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tracing::Instrument;
use uuid::{Builder, Uuid};

use super::breaker::Breaker;
use super::limiter::Limiter;
use super::policy::{self, Answer, Facts, Fate, Policy};
use super::transient::settle_deadline;
use super::{backoff, coalesce, observe, settle};
use crate::config::{DeliverySettings, WebEngageSettings};
use crate::store::destination::ProbeBackoff;
use crate::store::outbox::{ClaimedRow, Lease};
use crate::webengage::OperationKind;
use crate::webengage::client::{CallReport, Endpoint, WebEngageClient};

/// What the jobs share: the pool, the client, the policy, the limits.
pub struct Context {
    pub pool: PgPool,
    pub client: WebEngageClient,
    pub policy: Policy,
    pub limiter: Limiter,
    /// One permit per WebEngage call in flight (`BRIDGE_WORKER_CONCURRENCY`), taken
    /// once the quota allows the call: waiting for one endpoint's quota holds no slot
    /// another endpoint could use.
    pub calls: Semaphore,
    pub breaker: Mutex<Breaker>,
    /// While paused by a 401/404, how often to probe.
    pub pause_probe: std::time::Duration,
    pub coalesce_users: bool,
    /// Rows this process delivered since the backlog sampler last took the count.
    pub delivered: AtomicU64,
}

impl Context {
    pub fn new(
        pool: PgPool,
        client: WebEngageClient,
        webengage: &WebEngageSettings,
        settings: &DeliverySettings,
    ) -> Context {
        Context {
            limiter: Limiter::new(webengage, settings.rate_window, Some(pool.clone())),
            pool,
            client,
            policy: Policy::new(settings),
            calls: Semaphore::new(settings.concurrency.max(1)),
            breaker: Mutex::new(Breaker::default()),
            pause_probe: settings.pause_probe,
            coalesce_users: settings.coalesce_users,
            delivered: AtomicU64::new(0),
        }
    }

    /// The probes' backoff while degraded: from the retry base up to `BRIDGE_PAUSE_PROBE`.
    pub fn probe_backoff(&self) -> ProbeBackoff {
        ProbeBackoff {
            base: self.policy.retry_base,
            max: self.pause_probe.max(self.policy.retry_base),
        }
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One call for the rows `outbox_ids`, within the endpoint's quota and the
    /// concurrency, in a span naming the rows and the `x-request-id` (bodies only at
    /// debug), linked to the traces of the webhooks that stored the rows (`traces`).
    pub async fn call(
        &self,
        endpoint: &Endpoint,
        request_id: Uuid,
        outbox_ids: &[i64],
        traces: &[&str],
        body: &Value,
    ) -> CallReport {
        let span = tracing::info_span!(
            "webengage_call",
            otel.kind = "client",
            endpoint = endpoint.name(),
            %request_id,
            outbox_ids = ?outbox_ids,
            status = tracing::field::Empty,
        );
        crate::telemetry::link(&span, traces.iter().copied());
        async {
            self.limiter.ready(endpoint).await;
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = self.calls.acquire().await.ok();
            tracing::debug!(%body, "sending");
            let report = self.client.send(endpoint, request_id, body).await;
            self.limiter.observe(endpoint, &report);
            observe::response(endpoint, &report);
            if let Some(status) = report.http_status {
                tracing::Span::current().record("status", status);
            }
            tracing::debug!(response = ?report.excerpt, "WebEngage answer");
            report
        }
        .instrument(span)
        .await
    }
}

/// One record to send: a claimed row and, when coalescing, the queued user updates of
/// the same user merged into it (`rows[0]` is the head; the rest follow in order).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    rows: Vec<ClaimedRow>,
}

impl Record {
    pub fn new(head: ClaimedRow) -> Record {
        Record { rows: vec![head] }
    }

    /// `head` with the user updates queued behind it, in order.
    pub fn merged(head: ClaimedRow, followers: Vec<ClaimedRow>) -> Record {
        let mut rows = vec![head];
        rows.extend(followers);
        Record { rows }
    }

    pub fn head(&self) -> &ClaimedRow {
        &self.rows[0]
    }

    pub fn rows(&self) -> &[ClaimedRow] {
        &self.rows
    }

    pub fn followers(&self) -> &[ClaimedRow] {
        &self.rows[1..]
    }

    pub fn kind(&self) -> OperationKind {
        self.head().kind
    }

    /// The exact JSON for WebEngage: the row's body, or the merge of the user updates.
    pub fn body(&self) -> Value {
        match self.rows.as_slice() {
            [one] => one.body.clone(),
            rows => coalesce::merge_users(rows.iter().map(|r| &r.body)),
        }
    }

    /// The head alone, and the rows that were merged into it.
    fn unmerge(mut self) -> (Record, Vec<ClaimedRow>) {
        let followers = self.rows.split_off(1);
        (self, followers)
    }
}

/// What one task delivers: one record through its single endpoint, or up to
/// `bulk::MAX_BATCH` records of one kind (user or event) through the bulk endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub records: Vec<Record>,
    /// The call probes a paused or degraded destination.
    pub probe: bool,
}

impl Job {
    pub fn rows(&self) -> impl Iterator<Item = &ClaimedRow> {
        self.records.iter().flat_map(Record::rows)
    }

    pub fn leases(&self) -> Vec<Lease> {
        self.rows().map(ClaimedRow::lease).collect()
    }

    pub fn kind(&self) -> Option<OperationKind> {
        self.records.first().map(Record::kind)
    }

    /// Every log line of a job names its outbox rows and the webhook requests that
    /// stored them, so one `request_id` search follows a record from its webhook to
    /// WebEngage.
    pub fn span(&self) -> tracing::Span {
        let outbox_ids: Vec<i64> = self.rows().map(|r| r.id).collect();
        let mut request_ids: Vec<&str> = self
            .rows()
            .filter_map(|r| r.inbound_request_id.as_deref())
            .collect();
        request_ids.dedup();
        tracing::info_span!(
            "delivery",
            outbox_ids = ?outbox_ids,
            request_ids = %request_ids.join(","),
        )
    }
}

/// What WebEngage's answers to a job's calls said of the destination, the strongest
/// last: a refusal pauses everything; one acceptance proves the destination works.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Heard {
    #[default]
    Nothing,
    /// 5xx, timeouts, connection errors.
    Failed,
    /// 429: WebEngage is up, the quota is spent.
    Limited,
    /// WebEngage processed a request (2xx or 400).
    Accepted,
    /// 401/404.
    Refused,
}

impl Heard {
    fn of(answer: &Answer) -> Heard {
        match answer {
            Answer::Accepted | Answer::Rejected(_) => Heard::Accepted,
            Answer::Unauthorized(_) | Answer::NotFound(_) => Heard::Refused,
            Answer::RateLimited { .. } => Heard::Limited,
            Answer::Transient(_) => Heard::Failed,
        }
    }
}

/// What a job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub heard: Heard,
    pub calls: usize,
    /// Rows settled: delivered, dead, back to pending (retry, wait, pause, released).
    pub delivered: usize,
    pub dead: usize,
    pub pending: usize,
}

impl Report {
    pub fn add(&mut self, other: Report) {
        self.heard = self.heard.max(other.heard);
        self.calls += other.calls;
        self.delivered += other.delivered;
        self.dead += other.dead;
        self.pending += other.pending;
    }
}

/// Sends a job's records and settles every row. A bulk call WebEngage rejects is sent
/// again in halves, one after the other, until the bad records are alone; a merged
/// record it rejects goes again as its head alone, the merged rows back to the queue.
pub async fn run(ctx: &Context, job: Job) -> Report {
    let mut report = Report::default();
    let mut pending = vec![job.records];
    while let Some(mut records) = pending.pop() {
        let request = match request_for(&records) {
            Ok(request) => request,
            Err(problem) => {
                let rows: Vec<&ClaimedRow> = records.iter().flat_map(Record::rows).collect();
                report.add(settle::unsendable(ctx, &rows, &problem).await);
                continue;
            }
        };
        let rows: Vec<&ClaimedRow> = records.iter().flat_map(Record::rows).collect();
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        // One link per webhook, however many of its rows the call carries.
        let mut traces: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.trace_context.as_deref())
            .collect();
        traces.sort_unstable();
        traces.dedup();
        let report_of_call = ctx
            .call(&request.endpoint, request.id, &ids, &traces, &request.body)
            .await;
        let answer = policy::classify(&report_of_call, &request.endpoint);
        let until = settle_deadline();
        settle::record_attempts(ctx, &rows, request.id, &answer, &report_of_call, until).await;
        report.calls += 1;
        report.heard = report.heard.max(Heard::of(&answer));
        let failed_calls = ctx.breaker().record(answer.is_transient(), &ids);
        let facts = Facts {
            records: rows.len(),
            attempts: rows.iter().map(|r| r.attempts).max().unwrap_or(0),
            age: std::time::Duration::ZERO,
            failed_calls,
        };
        let (now, jitter) = (OffsetDateTime::now_utc(), backoff::jitter());
        let fates: Vec<Fate> = records
            .iter()
            .map(|record| {
                let age = now - record.head().age_from;
                let facts = Facts {
                    age: age.try_into().unwrap_or_default(),
                    ..facts
                };
                policy::decide(&answer, &facts, &ctx.policy, now, jitter)
            })
            .collect();
        if fates.contains(&Fate::Split) {
            tracing::info!(rows = rows.len(), request_id = %request.id, "WebEngage rejected the call; sending its parts apart to find the bad rows");
            if records.len() > 1 {
                let second = records.split_off(records.len() / 2);
                pending.push(second);
                pending.push(records);
            } else if let Some(record) = records.pop() {
                let (head, followers) = record.unmerge();
                report.add(settle::release(ctx, &followers, until).await);
                pending.push(vec![head]);
            }
            continue;
        }
        report.add(settle::carry_out(ctx, &records, &fates, job.probe, until).await);
    }
    report
}

/// A call: where it goes, what it carries, its `x-request-id`.
struct Request {
    endpoint: Endpoint,
    body: Value,
    id: Uuid,
}

/// The request for records of one kind: a lone record through its single endpoint
/// (transactions carry their campaign id in the URL, not the body), more through the
/// bulk endpoint.
fn request_for(records: &[Record]) -> Result<Request, String> {
    let id = request_id(records);
    if let [record] = records {
        let body = record.body();
        return match record.kind() {
            OperationKind::User => Ok(Request {
                endpoint: Endpoint::Users,
                body,
                id,
            }),
            OperationKind::Event => Ok(Request {
                endpoint: Endpoint::Events,
                body,
                id,
            }),
            OperationKind::Transaction => transaction(body, id),
        };
    }
    let bodies: Vec<Value> = records.iter().map(Record::body).collect();
    let (endpoint, body) = match records.first().map(Record::kind) {
        Some(OperationKind::Event) => (Endpoint::BulkEvents, json!({ "events": bodies })),
        _ => (Endpoint::BulkUsers, json!({ "users": bodies })),
    };
    Ok(Request { endpoint, body, id })
}

fn transaction(mut body: Value, id: Uuid) -> Result<Request, String> {
    let campaign = crate::webengage::operation::take_campaign_id(&mut body)
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|c| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_~".contains(ch))
        });
    match campaign {
        Some(campaign_id) => Ok(Request {
            endpoint: Endpoint::Transaction { campaign_id },
            body,
            id,
        }),
        None => Err("transaction without a usable campaignId".to_owned()),
    }
}

/// The call's `x-request-id`: a lone row's own id; for a bulk call or a merged record,
/// an id derived from its rows' ids (sorted), so the same rows sent again carry the
/// same id, and other rows another one.
pub fn request_id(records: &[Record]) -> Uuid {
    let mut ids: Vec<Uuid> = records
        .iter()
        .flat_map(Record::rows)
        .map(|r| r.request_id)
        .collect();
    if let [one] = ids.as_slice() {
        return *one;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use OperationKind::{Event, Transaction, User};

    pub(crate) fn row(id: i64, kind: OperationKind, body: Value) -> ClaimedRow {
        ClaimedRow {
            id,
            request_id: Uuid::from_u128(id as u128),
            kind,
            user_id: body["userId"].as_str().map(str::to_owned),
            body,
            attempts: 0,
            created_at: OffsetDateTime::UNIX_EPOCH,
            age_from: OffsetDateTime::UNIX_EPOCH,
            lease_token: Uuid::nil(),
            inbound_request_id: None,
            trace_context: None,
        }
    }

    fn one(id: i64, kind: OperationKind) -> Record {
        Record::new(row(id, kind, json!({"userId": format!("u{id}")})))
    }

    #[test]
    fn a_lone_record_goes_to_its_single_endpoint_with_its_own_id() {
        let request = request_for(&[one(1, User)]).unwrap();
        assert_eq!(request.endpoint, Endpoint::Users);
        assert_eq!(request.id, Uuid::from_u128(1));
        assert_eq!(request.body, json!({"userId": "u1"}));
        assert_eq!(
            request_for(&[one(2, Event)]).unwrap().endpoint,
            Endpoint::Events
        );
    }

    #[test]
    fn a_transaction_carries_its_campaign_in_the_url() {
        let txn = Record::new(row(
            3,
            Transaction,
            json!({"campaignId": "camp-7", "userId": "u"}),
        ));
        let request = request_for(&[txn]).unwrap();
        assert_eq!(
            request.endpoint,
            Endpoint::Transaction {
                campaign_id: "camp-7".into()
            }
        );
        assert_eq!(request.body, json!({"userId": "u"}));
        for bad in [json!({"userId": "u"}), json!({"campaignId": "../x"})] {
            let txn = Record::new(row(4, Transaction, bad));
            assert!(request_for(&[txn]).is_err());
        }
    }

    #[test]
    fn bulk_bodies_wrap_the_exact_record_bodies() {
        let request = request_for(&[one(1, Event), one(2, Event)]).unwrap();
        assert_eq!(request.endpoint, Endpoint::BulkEvents);
        assert_eq!(
            request.body,
            json!({"events": [{"userId": "u1"}, {"userId": "u2"}]})
        );
        let users = request_for(&[one(1, User), one(2, User)]).unwrap();
        assert_eq!(users.endpoint, Endpoint::BulkUsers);
    }

    #[test]
    fn derived_ids_ignore_row_order_and_depend_on_the_rows() {
        let (a, b, c) = (one(1, User), one(2, User), one(3, User));
        let ab = request_id(&[a.clone(), b.clone()]);
        assert_eq!(ab, request_id(&[b.clone(), a.clone()]));
        assert_ne!(ab, request_id(&[a.clone(), c]));
        assert_eq!(ab.get_version_num(), 8);
        // A merged record of the same rows is the same call.
        let merged = Record::merged(a.head().clone(), vec![b.head().clone()]);
        assert_eq!(request_id(&[merged]), ab);
    }

    #[test]
    fn a_merged_record_sends_the_merge_and_unmerges_to_its_head() {
        let head = row(1, User, json!({"userId": "L", "attributes": {"a": 1}}));
        let next = row(2, User, json!({"userId": "L", "attributes": {"b": 2}}));
        let record = Record::merged(head.clone(), vec![next.clone()]);
        assert_eq!(
            record.body(),
            json!({"userId": "L", "attributes": {"a": 1, "b": 2}})
        );
        let (alone, followers) = record.unmerge();
        assert_eq!(alone, Record::new(head));
        assert_eq!(followers, vec![next]);
    }
}
