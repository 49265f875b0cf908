//! The delivery worker against a real Postgres and wiremock playing WebEngage.

use std::future::Future;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webengage_bridge::config::{DataCenter, DeliverySettings, WebEngageSettings};
use webengage_bridge::delivery::spawn_worker;
use webengage_bridge::store::outbox::{self, OutboxRow};
use webengage_bridge::store::{OutboxStatus, attempts, destination};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LICENSE: &str = "lic~123";
const KEY: &str = "test-api-key";

fn delivery_settings() -> DeliverySettings {
    DeliverySettings {
        concurrency: 4,
        retry_base: Duration::from_millis(50),
        retry_max_delay: Duration::from_millis(200),
        retry_max_age: Duration::from_secs(3600),
        pause_probe: Duration::from_millis(200),
        retention: Duration::from_secs(30 * 86400),
        audit_retention: Duration::from_secs(365 * 86400),
        rate_window: Duration::from_secs(60),
    }
}

fn webengage_settings(server: &MockServer) -> WebEngageSettings {
    WebEngageSettings {
        license_code: Some(LICENSE.into()),
        api_key: Some(SecretString::from(KEY)),
        api_key_file: None,
        data_center: DataCenter::Global,
        base_url: Some(server.uri()),
        bulk: false,
        limit_users_per_min: 5000,
        limit_events_per_min: 5000,
        limit_bulk_per_min: 500,
        limit_transaction_per_min: 100,
    }
}

struct Running {
    shutdown: CancellationToken,
    handle: JoinHandle<()>,
}

impl Running {
    fn start(pool: &PgPool, webengage: WebEngageSettings, delivery: DeliverySettings) -> Running {
        let shutdown = CancellationToken::new();
        let handle = spawn_worker(pool.clone(), webengage, delivery, shutdown.clone());
        Running { shutdown, handle }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.handle)
            .await
            .expect("worker stops")
            .expect("worker did not panic");
    }
}

/// Inserts an outbox row; returns its id and request id.
async fn insert(pool: &PgPool, kind: &str, user_id: Option<&str>, body: &Value) -> (i64, Uuid) {
    let request_id = Uuid::new_v4();
    let id = sqlx::query_scalar(
        "INSERT INTO outbox (request_id, source, rule, kind, user_id, body)
         VALUES ($1, 'test', 'rule', $2::operation_kind, $3, $4) RETURNING id",
    )
    .bind(request_id)
    .bind(kind)
    .bind(user_id)
    .bind(body)
    .fetch_one(pool)
    .await
    .unwrap();
    (id, request_id)
}

async fn row(pool: &PgPool, id: i64) -> OutboxRow {
    outbox::get(pool, id).await.unwrap().expect("row exists")
}

/// Polls until `check` holds; fails the test after 15 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_status(pool: &PgPool, id: i64, status: OutboxStatus) -> OutboxRow {
    eventually(&format!("row {id} to be {status}"), || async {
        row(pool, id).await.status == status
    })
    .await;
    row(pool, id).await
}

fn queued() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"response": {"status": "queued"}}))
}

#[tokio::test]
async fn delivers_exact_body_to_each_endpoint_with_bearer_and_request_id() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    let user = json!({"userId": "u1", "firstName": "Asha", "attributes": {"plan": "gold"}});
    let event = json!({"userId": "u1", "eventName": "Lead Created", "eventData": {"n": 1}});
    let txn = json!({"campaignId": "camp-7", "userId": "u2", "ttl": 120});
    let (user_id, user_rid) = insert(&db.pool, "user", Some("u1"), &user).await;
    let (event_id, event_rid) = insert(&db.pool, "event", Some("u1"), &event).await;
    let (txn_id, txn_rid) = insert(&db.pool, "transaction", Some("u2"), &txn).await;
    let expectations = [
        (
            format!("/v1/accounts/{LICENSE}/users"),
            user_rid,
            user.clone(),
        ),
        (
            format!("/v1/accounts/{LICENSE}/events"),
            event_rid,
            event.clone(),
        ),
        (
            format!("/v2/accounts/{LICENSE}/experiments/camp-7/transaction"),
            txn_rid,
            // The campaign id goes in the URL, not the body.
            json!({"userId": "u2", "ttl": 120}),
        ),
    ];
    for (p, rid, body) in expectations {
        Mock::given(method("POST"))
            .and(path(p))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .and(header("x-request-id", rid.to_string().as_str()))
            .and(header("content-type", "application/json"))
            .and(body_json(body))
            .respond_with(queued())
            .expect(1)
            .mount(&server)
            .await;
    }

    let worker = Running::start(&db.pool, webengage_settings(&server), delivery_settings());
    for id in [user_id, event_id, txn_id] {
        let delivered = wait_status(&db.pool, id, OutboxStatus::Delivered).await;
        assert_eq!(delivered.attempts, 1);
        assert!(delivered.delivered_at.is_some() && delivered.lease_token.is_none());
        let tries = attempts::list_for_outbox(&db.pool, id).await.unwrap();
        assert_eq!(tries.len(), 1);
        assert_eq!(
            (tries[0].http_status, tries[0].outcome.as_str()),
            (Some(201), "delivered")
        );
    }
    worker.stop().await;
    server.verify().await;
}

#[tokio::test]
async fn a_500_is_retried_with_the_same_request_id() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream broke"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(queued())
        .mount(&server)
        .await;
    let (id, rid) = insert(&db.pool, "user", Some("u1"), &json!({"userId": "u1"})).await;

    let worker = Running::start(&db.pool, webengage_settings(&server), delivery_settings());
    let delivered = wait_status(&db.pool, id, OutboxStatus::Delivered).await;
    worker.stop().await;

    assert_eq!(delivered.attempts, 2);
    let sent: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers["x-request-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent, vec![rid.to_string(), rid.to_string()]);
    let tries = attempts::list_for_outbox(&db.pool, id).await.unwrap();
    let seen: Vec<_> = tries
        .iter()
        .map(|a| (a.http_status, a.outcome.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![(Some(500), "transient"), (Some(201), "delivered")]
    );
    assert_eq!(tries[0].response_excerpt.as_deref(), Some("upstream broke"));
}

#[tokio::test]
async fn a_400_makes_the_row_dead_with_webengages_message() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    let answer = json!({"response": {"status": "error", "message": "eventName is required"}});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(answer))
        .expect(1)
        .mount(&server)
        .await;
    let (id, _) = insert(&db.pool, "event", Some("u1"), &json!({"userId": "u1"})).await;

    let worker = Running::start(&db.pool, webengage_settings(&server), delivery_settings());
    let dead = wait_status(&db.pool, id, OutboxStatus::Dead).await;
    worker.stop().await;

    assert!(
        dead.last_error
            .as_deref()
            .unwrap()
            .contains("eventName is required"),
        "{dead:?}"
    );
    let tries = attempts::list_for_outbox(&db.pool, id).await.unwrap();
    assert_eq!(tries.len(), 1);
    assert_eq!(
        (tries[0].http_status, tries[0].outcome.as_str()),
        (Some(400), "rejected")
    );
    assert!(
        destination::load(&db.pool)
            .await
            .unwrap()
            .paused_reason
            .is_none()
    );
}

#[tokio::test]
async fn a_401_pauses_without_charging_and_the_probe_resumes() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    let refused = json!({"response": {"status": "error", "message": "Authentication failed"}});
    let guard = Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(refused))
        .mount_as_scoped(&server)
        .await;
    let (id, _) = insert(&db.pool, "user", Some("u1"), &json!({"userId": "u1"})).await;

    let worker = Running::start(&db.pool, webengage_settings(&server), delivery_settings());
    eventually("the destination to pause", || async {
        destination::load(&db.pool).await.unwrap().is_paused()
            && row(&db.pool, id).await.status == OutboxStatus::Pending
    })
    .await;
    let reason = destination::load(&db.pool)
        .await
        .unwrap()
        .paused_reason
        .unwrap();
    assert!(
        reason.contains("401") && reason.contains("Authentication failed"),
        "{reason}"
    );
    let waiting = row(&db.pool, id).await;
    assert_eq!(waiting.attempts, 0, "a 401 charges no attempt");

    drop(guard);
    Mock::given(method("POST"))
        .respond_with(queued())
        .mount(&server)
        .await;
    let delivered = wait_status(&db.pool, id, OutboxStatus::Delivered).await;
    worker.stop().await;

    assert_eq!(delivered.attempts, 1);
    assert!(
        destination::load(&db.pool)
            .await
            .unwrap()
            .paused_reason
            .is_none()
    );
    let outcomes: Vec<String> = attempts::list_for_outbox(&db.pool, id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(outcomes.first().map(String::as_str), Some("unauthorized"));
    assert_eq!(outcomes.last().map(String::as_str), Some("delivered"));
}

#[tokio::test]
async fn one_users_rows_arrive_in_order_despite_retries() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    let bodies: Vec<Value> = (1..=3)
        .map(|n| json!({"userId": "u1", "eventName": format!("e{n}")}))
        .collect();
    Mock::given(method("POST"))
        .and(body_json(&bodies[0]))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(queued())
        .mount(&server)
        .await;
    let mut ids = Vec::new();
    for body in &bodies {
        ids.push(insert(&db.pool, "event", Some("u1"), body).await.0);
    }
    let other = json!({"userId": "u2", "eventName": "other"});
    let (other_id, _) = insert(&db.pool, "event", Some("u2"), &other).await;

    let worker = Running::start(&db.pool, webengage_settings(&server), delivery_settings());
    for id in ids.iter().chain([&other_id]) {
        wait_status(&db.pool, *id, OutboxStatus::Delivered).await;
    }
    worker.stop().await;

    let arrived: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.body_json().unwrap())
        .filter(|b: &Value| b["userId"] == "u1")
        .collect();
    let expected = vec![
        bodies[0].clone(),
        bodies[0].clone(),
        bodies[0].clone(),
        bodies[1].clone(),
        bodies[2].clone(),
    ];
    assert_eq!(arrived, expected);
    assert_eq!(row(&db.pool, ids[0]).await.attempts, 3);
}

#[tokio::test]
async fn a_429_waits_for_the_next_minute_without_charging() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("X-RateLimit-Remaining", "0"))
        .mount(&server)
        .await;
    let (id, _) = insert(&db.pool, "user", Some("u1"), &json!({"userId": "u1"})).await;

    let worker = Running::start(&db.pool, webengage_settings(&server), delivery_settings());
    eventually("the 429 attempt", || async {
        !attempts::list_for_outbox(&db.pool, id)
            .await
            .unwrap()
            .is_empty()
            && row(&db.pool, id).await.status == OutboxStatus::Pending
    })
    .await;
    worker.stop().await;

    let waiting = row(&db.pool, id).await;
    assert_eq!(waiting.attempts, 0);
    let later: bool =
        sqlx::query_scalar("SELECT next_attempt_at > now() FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(later, "released until the next window");
}

#[tokio::test]
async fn a_transient_failure_past_the_age_limit_is_dead() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let (id, _) = insert(&db.pool, "user", Some("u1"), &json!({"userId": "u1"})).await;
    sqlx::query("UPDATE outbox SET created_at = now() - interval '2 hours' WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();

    let worker = Running::start(&db.pool, webengage_settings(&server), delivery_settings());
    let dead = wait_status(&db.pool, id, OutboxStatus::Dead).await;
    worker.stop().await;
    assert!(
        dead.last_error
            .unwrap()
            .starts_with("gave up after 1 attempts")
    );
}

#[tokio::test]
async fn without_credentials_delivery_is_paused_and_says_why() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    let (id, _) = insert(&db.pool, "user", Some("u1"), &json!({"userId": "u1"})).await;
    let settings = WebEngageSettings {
        api_key: None,
        ..webengage_settings(&server)
    };

    let worker = Running::start(&db.pool, settings, delivery_settings());
    eventually("the pause", || async {
        destination::load(&db.pool).await.unwrap().is_paused()
    })
    .await;
    worker.stop().await;

    let reason = destination::load(&db.pool)
        .await
        .unwrap()
        .paused_reason
        .unwrap();
    assert!(reason.contains("WEBENGAGE_LICENSE_CODE and WEBENGAGE_API_KEY are not set"));
    assert_eq!(row(&db.pool, id).await.status, OutboxStatus::Pending);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn shutdown_hands_unfinished_rows_back() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(queued().set_delay(Duration::from_secs(25)))
        .mount(&server)
        .await;
    let (id, _) = insert(&db.pool, "user", Some("u1"), &json!({"userId": "u1"})).await;

    let worker = Running::start(&db.pool, webengage_settings(&server), delivery_settings());
    eventually("the call to start", || async {
        !server.received_requests().await.unwrap().is_empty()
    })
    .await;
    worker.stop().await;

    let released = row(&db.pool, id).await;
    assert_eq!(
        (released.status.as_str(), released.attempts),
        ("pending", 0)
    );
    assert!(released.lease_token.is_none());
}
