//! What the delivery tests share: settings for a worker against wiremock, queued rows,
//! a worker stepped by the test (`Stepper`), and the whole loop in a task (`Running`).

use std::future::Future;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webengage_bridge::config::{DataCenter, DeliverySettings, WebEngageSettings};
use webengage_bridge::delivery::job::Report;
use webengage_bridge::delivery::spawn_worker;
use webengage_bridge::delivery::worker::{Step, Worker};
use webengage_bridge::store::OutboxStatus;
use webengage_bridge::store::outbox::{self, OutboxRow};
use webengage_bridge::webengage::OperationKind;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const LICENSE: &str = "lic";
pub const KEY: &str = "test-api-key";

/// WebEngage at `server`, single calls (bulk off), the default quotas.
pub fn webengage(server: &MockServer) -> WebEngageSettings {
    WebEngageSettings {
        license_code: Some(LICENSE.into()),
        api_key: Some(SecretString::from(KEY)),
        api_key_file: None,
        data_center: DataCenter::Global,
        base_url: Some(server.uri()),
        bulk: false,
        limit_users_per_min: 5000,
        limit_events_per_min: 5000,
        limit_bulk_per_min: None,
        limit_bulk_users_per_min: None,
        limit_bulk_events_per_min: None,
        limit_transaction_per_min: 100,
    }
}

pub fn bulk(server: &MockServer) -> WebEngageSettings {
    WebEngageSettings {
        bulk: true,
        ..webengage(server)
    }
}

/// Short backoff and probes, so loop tests settle within a second or two.
pub fn delivery() -> DeliverySettings {
    DeliverySettings {
        concurrency: 4,
        retry_base: Duration::from_millis(50),
        retry_max_delay: Duration::from_millis(200),
        retry_max_age: Duration::from_secs(3600),
        pause_probe: Duration::from_millis(200),
        retention: Duration::from_secs(30 * 86400),
        audit_retention: Duration::from_secs(365 * 86400),
        rate_window: Duration::from_secs(60),
        breaker_threshold: 10,
        coalesce_users: true,
    }
}

/// A row queued by hand: its id and idempotency id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    pub id: i64,
    pub request_id: Uuid,
}

/// Queues a row of `kind` for the user in `body` (`userId`), as ingest would.
pub async fn queue(pool: &PgPool, kind: OperationKind, body: &Value) -> Queued {
    queue_for(pool, kind, body["userId"].as_str(), body).await
}

pub async fn queue_for(
    pool: &PgPool,
    kind: OperationKind,
    user: Option<&str>,
    body: &Value,
) -> Queued {
    let request_id = Uuid::now_v7();
    let id = sqlx::query_scalar(
        "INSERT INTO outbox (request_id, source, rule, kind, user_id, body, head)
         VALUES ($1, 'test', 'rule', $2, $3, $4,
                 $3::text IS NULL OR NOT EXISTS (
                     SELECT 1 FROM outbox e WHERE e.user_id = $3 AND e.status IN ('pending', 'in_flight')))
         RETURNING id",
    )
    .bind(request_id)
    .bind(kind)
    .bind(user)
    .bind(body)
    .fetch_one(pool)
    .await
    .unwrap();
    Queued { id, request_id }
}

pub async fn row(pool: &PgPool, id: i64) -> OutboxRow {
    outbox::get(pool, id).await.unwrap().expect("row exists")
}

pub async fn status(pool: &PgPool, id: i64) -> OutboxStatus {
    row(pool, id).await.status
}

/// Makes every waiting row due now: a test steps past a backoff instead of sleeping it.
pub async fn make_due(pool: &PgPool) {
    sqlx::query(
        "UPDATE outbox SET next_attempt_at = now() WHERE status = 'pending' AND next_attempt_at > now()",
    )
    .execute(pool)
    .await
    .unwrap();
}

pub fn queued() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"response": {"status": "queued"}}))
}

/// WebEngage answering `queued` to every call (behind mocks of higher priority).
pub async fn accept_all(server: &MockServer) {
    Mock::given(method("POST"))
        .respond_with(queued())
        .mount(server)
        .await;
}

/// A worker the test steps: each `step` claims what is due and runs those jobs to the
/// end, so what happened is settled when it returns.
pub struct Stepper {
    pub worker: Worker,
}

impl Stepper {
    pub async fn new(
        pool: &PgPool,
        webengage: WebEngageSettings,
        delivery: DeliverySettings,
    ) -> Stepper {
        let worker = Worker::connect(pool.clone(), &webengage, &delivery)
            .await
            .expect("credentials are set");
        Stepper { worker }
    }

    pub async fn step(&mut self) -> (Step, Report) {
        self.worker.run_once().await
    }

    /// Steps until a step finds nothing to do; makes retries due between steps when
    /// `skip_backoff`. Returns the steps' reports added up.
    pub async fn drain(&mut self, pool: &PgPool, skip_backoff: bool) -> Report {
        let mut total = Report::default();
        for _ in 0..200 {
            let (step, report) = self.step().await;
            total.add(report);
            let idle = matches!(step, Step::Claimed { rows: 0, .. });
            if idle && !(skip_backoff && open_rows(pool).await > 0) {
                return total;
            }
            if skip_backoff {
                make_due(pool).await;
            }
        }
        panic!("still delivering after 200 steps");
    }
}

pub async fn open_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The whole worker loop in a task, as `serve` runs it.
pub struct Running {
    shutdown: CancellationToken,
    handle: JoinHandle<()>,
}

impl Running {
    pub fn start(
        pool: &PgPool,
        webengage: WebEngageSettings,
        delivery: DeliverySettings,
    ) -> Running {
        let shutdown = CancellationToken::new();
        let handle = spawn_worker(pool.clone(), webengage, delivery, shutdown.clone());
        Running { shutdown, handle }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.handle)
            .await
            .expect("worker stops")
            .expect("worker did not panic");
    }
}

/// Polls until `check` holds; fails the test after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `x-request-id` of every request WebEngage received, in order.
pub async fn request_ids(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers["x-request-id"].to_str().unwrap().to_owned())
        .collect()
}

/// `(path's last segment, body)` of every request WebEngage received, in order.
pub async fn calls(server: &MockServer) -> Vec<(String, Value)> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let endpoint = r.url.path().rsplit('/').next().unwrap().to_owned();
            (endpoint, r.body_json().unwrap())
        })
        .collect()
}
