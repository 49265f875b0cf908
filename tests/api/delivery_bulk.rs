//! Bulk delivery (`WEBENGAGE_BULK`) against a real Postgres and wiremock as WebEngage.

use std::collections::HashSet;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webengage_bridge::config::{DataCenter, DeliverySettings, WebEngageSettings};
use webengage_bridge::delivery::spawn_worker;
use webengage_bridge::store::{attempts, outbox};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn settings(server: &MockServer) -> (WebEngageSettings, DeliverySettings) {
    let webengage = WebEngageSettings {
        license_code: Some("lic".into()),
        api_key: Some(SecretString::from("key")),
        api_key_file: None,
        data_center: DataCenter::Global,
        base_url: Some(server.uri()),
        bulk: true,
        limit_users_per_min: 5000,
        limit_events_per_min: 5000,
        limit_bulk_per_min: 500,
        limit_transaction_per_min: 100,
    };
    let delivery = DeliverySettings {
        concurrency: 2,
        retry_base: Duration::from_millis(50),
        retry_max_delay: Duration::from_millis(200),
        retry_max_age: Duration::from_secs(3600),
        pause_probe: Duration::from_millis(200),
        retention: Duration::from_secs(86400),
        audit_retention: Duration::from_secs(365 * 86400),
        rate_window: Duration::from_secs(60),
    };
    (webengage, delivery)
}

async fn insert(pool: &PgPool, kind: &str, body: &Value) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO outbox (request_id, source, rule, kind, user_id, body)
         VALUES ($1, 'test', 'rule', $2::operation_kind, $3, $4) RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(kind)
    .bind(body["userId"].as_str())
    .bind(body)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Runs a worker until every row in `ids` has left pending/in_flight (15 s at most).
async fn run_until_settled(
    pool: &PgPool,
    webengage: WebEngageSettings,
    delivery: DeliverySettings,
    ids: &[i64],
) {
    let shutdown = CancellationToken::new();
    let handle = spawn_worker(pool.clone(), webengage, delivery, shutdown.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE id = ANY($1) AND status IN ('pending', 'in_flight')",
        )
        .bind(ids)
        .fetch_one(pool)
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rows still open: {open}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    handle.await.unwrap();
}

async fn status(pool: &PgPool, id: i64) -> String {
    outbox::get(pool, id)
        .await
        .unwrap()
        .unwrap()
        .status
        .to_string()
}

fn queued() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"response": {"status": "queued"}}))
}

#[tokio::test]
async fn due_users_and_events_go_in_one_bulk_call_each() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(queued())
        .mount(&server)
        .await;
    let users: Vec<Value> = (1..=3)
        .map(|n| json!({"userId": format!("u{n}"), "firstName": "A"}))
        .collect();
    let events: Vec<Value> = (1..=2)
        .map(|n| json!({"userId": format!("u{n}"), "eventName": "E"}))
        .collect();
    let mut ids = Vec::new();
    for body in &users {
        ids.push(insert(&db.pool, "user", body).await);
    }
    // Events of users u1 and u2 wait behind their user rows (per-user order).
    for body in &events {
        ids.push(insert(&db.pool, "event", body).await);
    }
    let (webengage, delivery) = settings(&server);
    run_until_settled(&db.pool, webengage, delivery, &ids).await;

    for id in &ids {
        assert_eq!(status(&db.pool, *id).await, "delivered");
    }
    let requests = server.received_requests().await.unwrap();
    let calls: Vec<(String, Value)> = requests
        .iter()
        .map(|r| (r.url.path().to_owned(), r.body_json().unwrap()))
        .collect();
    assert_eq!(
        calls,
        vec![
            (
                "/v1/accounts/lic/bulk-users".to_owned(),
                json!({ "users": users })
            ),
            (
                "/v1/accounts/lic/bulk-events".to_owned(),
                json!({ "events": events })
            ),
        ]
    );
    // Every row's attempt names the batch's request id, the one that was sent.
    let sent = requests[0].headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let first = attempts::list_for_outbox(&db.pool, ids[0]).await.unwrap();
    assert_eq!(first[0].request_id.to_string(), sent);
}

#[tokio::test]
async fn a_400_on_a_bulk_call_isolates_the_bad_row() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    let bad = json!({"response": {"status": "error", "message": "invalid birthDate"}});
    Mock::given(method("POST"))
        .and(body_string_contains("not-a-date"))
        .respond_with(ResponseTemplate::new(400).set_body_json(bad))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(queued())
        .mount(&server)
        .await;
    let mut ids = Vec::new();
    for n in 1..=4 {
        let birth = if n == 4 {
            "not-a-date"
        } else {
            "1990-01-01T00:00:00+0000"
        };
        ids.push(
            insert(
                &db.pool,
                "user",
                &json!({"userId": format!("u{n}"), "birthDate": birth}),
            )
            .await,
        );
    }
    let (webengage, delivery) = settings(&server);
    run_until_settled(&db.pool, webengage, delivery, &ids).await;

    for id in &ids[..3] {
        assert_eq!(status(&db.pool, *id).await, "delivered");
    }
    let dead = outbox::get(&db.pool, ids[3]).await.unwrap().unwrap();
    assert_eq!((dead.status.as_str(), dead.attempts), ("dead", 1));
    assert!(dead.last_error.unwrap().contains("invalid birthDate"));
    // 4 rows (400) → [u1,u2] (ok) + [u3,u4] (400) → u3 alone (ok) + u4 alone (400).
    let paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        paths,
        ["bulk-users", "bulk-users", "bulk-users", "users", "users"]
    );
}

#[tokio::test]
async fn a_retried_batch_keeps_its_request_id() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/accounts/lic/bulk-events"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(queued())
        .mount(&server)
        .await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(
            insert(
                &db.pool,
                "event",
                &json!({"userId": format!("u{n}"), "eventName": "E"}),
            )
            .await,
        );
    }
    let (webengage, delivery) = settings(&server);
    run_until_settled(&db.pool, webengage, delivery, &ids).await;

    let sent: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.headers["x-request-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent.iter().collect::<HashSet<_>>().len(),
        1,
        "same id on the retry: {sent:?}"
    );
    for id in &ids {
        let row = outbox::get(&db.pool, *id).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.attempts), ("delivered", 2));
    }
}
