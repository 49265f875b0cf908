//! Delivery at WebEngage's limits, in one process: bulk backlogs, fairness between
//! users and between first attempts and retries.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webengage_bridge::config::{DataCenter, DeliverySettings, WebEngageSettings};
use webengage_bridge::delivery::spawn_worker;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn webengage(server: &MockServer, bulk: bool) -> WebEngageSettings {
    WebEngageSettings {
        license_code: Some("lic".into()),
        api_key: Some(SecretString::from("key")),
        api_key_file: None,
        data_center: DataCenter::Global,
        base_url: Some(server.uri()),
        bulk,
        limit_users_per_min: 5000,
        limit_events_per_min: 5000,
        limit_bulk_per_min: 500,
        limit_transaction_per_min: 100,
    }
}

fn delivery(concurrency: usize) -> DeliverySettings {
    DeliverySettings {
        concurrency,
        retry_base: Duration::from_millis(50),
        retry_max_delay: Duration::from_millis(100),
        retry_max_age: Duration::from_secs(3600),
        pause_probe: Duration::from_millis(200),
        retention: Duration::from_secs(86400),
        audit_retention: Duration::from_secs(365 * 86400),
        rate_window: Duration::from_secs(60),
    }
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

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Polls until `sql` counts `expected`; fails after 20 s.
async fn wait_for(pool: &PgPool, sql: &str, expected: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = count(pool, sql).await;
        if n == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{sql}` stayed at {n}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn queued() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"response": {"status": "queued"}}))
}

struct Running(CancellationToken, tokio::task::JoinHandle<()>);

impl Running {
    fn start(pool: &PgPool, webengage: WebEngageSettings, delivery: DeliverySettings) -> Running {
        let shutdown = CancellationToken::new();
        let handle = spawn_worker(pool.clone(), webengage, delivery, shutdown.clone());
        Running(shutdown, handle)
    }

    async fn stop(self) {
        self.0.cancel();
        self.1.await.unwrap();
    }
}

/// The user ids WebEngage received, request by request, in arrival order.
async fn users_per_request(server: &MockServer) -> Vec<Vec<String>> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let body: Value = r.body_json().unwrap();
            let records = match body.get("users").or_else(|| body.get("events")) {
                Some(Value::Array(items)) => items.clone(),
                _ => vec![body],
            };
            records
                .iter()
                .map(|b| b["userId"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn a_60_row_backlog_goes_out_in_bulk_requests_of_at_most_25_each_row_once() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(queued())
        .mount(&server)
        .await;
    for n in 0..60 {
        let kind = if n % 2 == 0 { "user" } else { "event" };
        let body = match kind {
            "user" => json!({"userId": format!("u{n}")}),
            _ => json!({"userId": format!("u{n}"), "eventName": "Lead Created"}),
        };
        insert(&db.pool, kind, &body).await;
    }

    let worker = Running::start(&db.pool, webengage(&server, true), delivery(4));
    wait_for(
        &db.pool,
        "SELECT count(*) FROM outbox WHERE status = 'delivered'",
        60,
    )
    .await;
    worker.stop().await;

    let requests = server.received_requests().await.unwrap();
    assert!(
        requests.iter().all(
            |r| r.url.path().ends_with("/bulk-users") || r.url.path().ends_with("/bulk-events")
        ),
        "every request went through a bulk endpoint"
    );
    let batches = users_per_request(&server).await;
    assert!(batches.iter().all(|b| b.len() <= 25), "{batches:?}");
    assert!(batches.len() >= 4, "30 users and 30 events need 4 requests");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for user in batches.into_iter().flatten() {
        *seen.entry(user).or_default() += 1;
    }
    assert_eq!(seen.len(), 60);
    assert!(seen.values().all(|n| *n == 1), "each row exactly once");
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM outbox WHERE attempts <> 1").await,
        0
    );
}

#[tokio::test]
async fn a_users_huge_backlog_does_not_starve_other_users() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(queued())
        .mount(&server)
        .await;
    for n in 0..200 {
        insert(
            &db.pool,
            "event",
            &json!({"userId": "A", "eventName": format!("e{n}")}),
        )
        .await;
    }
    let others: Vec<String> = ('B'..='K').map(String::from).collect();
    for user in &others {
        insert(
            &db.pool,
            "event",
            &json!({"userId": user, "eventName": "e"}),
        )
        .await;
    }

    let worker = Running::start(&db.pool, webengage(&server, false), delivery(4));
    wait_for(
        &db.pool,
        "SELECT count(*) FROM outbox WHERE status = 'delivered'",
        210,
    )
    .await;
    worker.stop().await;

    let order: Vec<String> = users_per_request(&server)
        .await
        .into_iter()
        .flatten()
        .collect();
    let last_other = order
        .iter()
        .rposition(|u| u != "A")
        .expect("the other users were delivered");
    // A claim takes one row per user, so B..K go with A's first rows, not after 200.
    assert!(
        last_other < 20,
        "B..K delivered at positions up to {last_other}"
    );
    assert_eq!(order.iter().filter(|u| *u == "A").count(), 200);
}

#[tokio::test]
async fn a_retry_storm_leaves_slots_for_first_attempts() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    // Every row of the storm fails slowly, again and again.
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"eventName": "storm"})))
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_millis(300)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/accounts/lic/events"))
        .respond_with(queued())
        .mount(&server)
        .await;
    for n in 0..20 {
        insert(
            &db.pool,
            "event",
            &json!({"userId": format!("s{n}"), "eventName": "storm"}),
        )
        .await;
    }
    let worker = Running::start(&db.pool, webengage(&server, false), delivery(4));
    let storm = "SELECT count(*) FROM outbox WHERE body->>'eventName' = 'storm' AND attempts >= 1";
    wait_for(&db.pool, storm, 20).await;

    // Fresh rows arrive while every storm row keeps coming due again.
    for n in 0..10 {
        insert(
            &db.pool,
            "event",
            &json!({"userId": format!("f{n}"), "eventName": "fresh"}),
        )
        .await;
    }
    let started = tokio::time::Instant::now();
    wait_for(
        &db.pool,
        "SELECT count(*) FROM outbox WHERE body->>'eventName' = 'fresh' AND status = 'delivered'",
        10,
    )
    .await;
    let took = started.elapsed();
    let still_failing = count(
        &db.pool,
        "SELECT count(*) FROM outbox WHERE body->>'eventName' = 'storm' AND status <> 'delivered'",
    )
    .await;
    worker.stop().await;

    assert_eq!(still_failing, 20, "the storm was still going");
    // Half the slots stay with first attempts: 10 quick calls over 2 slots.
    assert!(took < Duration::from_secs(3), "fresh rows took {took:?}");
}
