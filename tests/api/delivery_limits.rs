//! Delivery at WebEngage's limits, in one process: bulk backlogs, each endpoint's own
//! quota, `Retry-After`, fairness between users and between first attempts and
//! retries, and the circuit breaker.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::delivery::{
    self as d, Running, Stepper, eventually, make_due, queue, queued, row,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use webengage_bridge::config::{DeliverySettings, WebEngageSettings};
use webengage_bridge::delivery::job::Heard;
use webengage_bridge::delivery::worker::Step;
use webengage_bridge::store::destination::{self, Mode};
use webengage_bridge::store::{OutboxStatus, attempts};
use webengage_bridge::webengage::OperationKind::{Event, Transaction, User};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn delivered(pool: &PgPool) -> i64 {
    count(
        pool,
        "SELECT count(*) FROM outbox WHERE status = 'delivered'",
    )
    .await
}

/// The user ids WebEngage received, request by request, in arrival order.
async fn users_per_request(server: &MockServer) -> Vec<Vec<String>> {
    d::calls(server)
        .await
        .into_iter()
        .map(|(_, body)| {
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

/// Answers with `answer` and notes when each call came, to which endpoint.
#[derive(Clone)]
struct Stamped {
    started: Instant,
    calls: Arc<Mutex<Vec<(Duration, String)>>>,
    answer: ResponseTemplate,
}

impl Stamped {
    fn new(answer: ResponseTemplate) -> Stamped {
        Stamped {
            started: Instant::now(),
            calls: Arc::default(),
            answer,
        }
    }

    fn calls(&self) -> Vec<(Duration, String)> {
        self.calls.lock().unwrap().clone()
    }
}

impl Respond for Stamped {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let endpoint = request.url.path().rsplit('/').next().unwrap().to_owned();
        self.calls
            .lock()
            .unwrap()
            .push((self.started.elapsed(), endpoint));
        self.answer.clone()
    }
}

#[tokio::test]
async fn a_60_row_backlog_goes_out_in_bulk_requests_of_at_most_25_each_row_once() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    d::accept_all(&server).await;
    for n in 0..60 {
        let (kind, body) = match n % 2 {
            0 => (User, json!({"userId": format!("u{n}")})),
            _ => (
                Event,
                json!({"userId": format!("u{n}"), "eventName": "Lead Created"}),
            ),
        };
        queue(&db.pool, kind, &body).await;
    }

    let mut worker = Stepper::new(&db.pool, d::bulk(&server), d::delivery()).await;
    let report = worker.drain(&db.pool, false).await;
    assert_eq!((report.delivered, report.calls), (60, 4));

    let batches = users_per_request(&server).await;
    assert!(batches.iter().all(|b| b.len() <= 25), "{batches:?}");
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
async fn a_users_huge_backlog_does_not_hold_back_other_users() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    d::accept_all(&server).await;
    for n in 0..50 {
        queue(
            &db.pool,
            Event,
            &json!({"userId": "A", "eventName": format!("e{n}")}),
        )
        .await;
    }
    let others: Vec<String> = ('B'..='K').map(String::from).collect();
    for user in &others {
        queue(&db.pool, Event, &json!({"userId": user, "eventName": "e"})).await;
    }

    let mut worker = Stepper::new(&db.pool, d::bulk(&server), d::delivery()).await;
    // Only each user's head is a candidate: the first claim takes A's first row and
    // the ten others, not 25 of A's.
    let (step, report) = worker.step().await;
    assert!(matches!(step, Step::Claimed { rows: 11, .. }), "{step:?}");
    assert_eq!(report.delivered, 11);
    let first: Vec<String> = users_per_request(&server).await.concat();
    assert_eq!(first.iter().filter(|u| *u == "A").count(), 1);
    assert_eq!(first.len(), 11);

    let report = worker.drain(&db.pool, false).await;
    assert_eq!(report.delivered, 49);
    let order: Vec<String> = users_per_request(&server).await.concat();
    assert_eq!(order.iter().filter(|u| *u == "A").count(), 50);
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
        queue(
            &db.pool,
            Event,
            &json!({"userId": format!("s{n}"), "eventName": "storm"}),
        )
        .await;
    }
    // The breaker would stop the storm: this is about the slots.
    let delivery = DeliverySettings {
        retry_max_delay: Duration::from_millis(100),
        breaker_threshold: 0,
        ..d::delivery()
    };
    let worker = Running::start(&db.pool, d::webengage(&server), delivery);
    let storm = "SELECT count(*) FROM outbox WHERE body->>'eventName' = 'storm' AND attempts >= 1";
    eventually(
        "every storm row to fail once",
        Duration::from_secs(20),
        || async { count(&db.pool, storm).await == 20 },
    )
    .await;

    // Fresh rows arrive while every storm row keeps coming due again.
    for n in 0..10 {
        queue(
            &db.pool,
            Event,
            &json!({"userId": format!("f{n}"), "eventName": "fresh"}),
        )
        .await;
    }
    let started = tokio::time::Instant::now();
    let fresh =
        "SELECT count(*) FROM outbox WHERE body->>'eventName' = 'fresh' AND status = 'delivered'";
    eventually("the fresh rows", Duration::from_secs(20), || async {
        count(&db.pool, fresh).await == 10
    })
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

#[tokio::test]
async fn bulk_users_and_bulk_events_each_fill_their_own_quota_in_the_same_window() {
    const QUOTA: usize = 3;
    const WINDOW: Duration = Duration::from_secs(2);
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    let stamped = Stamped::new(queued());
    Mock::given(method("POST"))
        .respond_with(stamped.clone())
        .mount(&server)
        .await;
    // 6 bulk calls of each kind: two windows' worth each.
    for n in 0..150 {
        queue(&db.pool, User, &json!({"userId": format!("u{n}")})).await;
        queue(
            &db.pool,
            Event,
            &json!({"userId": format!("e{n}"), "eventName": "E"}),
        )
        .await;
    }
    let webengage = WebEngageSettings {
        limit_bulk_users_per_min: Some(QUOTA as u32),
        limit_bulk_events_per_min: Some(QUOTA as u32),
        ..d::bulk(&server)
    };
    let delivery = DeliverySettings {
        rate_window: WINDOW,
        ..d::delivery()
    };
    let worker = Running::start(&db.pool, webengage, delivery);
    eventually("the backlog", Duration::from_secs(30), || async {
        delivered(&db.pool).await == 300
    })
    .await;
    worker.stop().await;

    // Windows start on the epoch's multiples of WINDOW, like the limiter's.
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let offset = since_epoch - stamped.started.elapsed();
    let mut per_window: BTreeMap<u128, (usize, usize)> = BTreeMap::new();
    for (at, endpoint) in stamped.calls() {
        let window = (offset + at).as_millis() / WINDOW.as_millis();
        let entry = per_window.entry(window).or_default();
        match endpoint.as_str() {
            "bulk-users" => entry.0 += 1,
            "bulk-events" => entry.1 += 1,
            other => panic!("a call to {other}"),
        }
    }
    assert!(
        per_window
            .values()
            .all(|(users, events)| *users <= QUOTA && *events <= QUOTA),
        "over a quota: {per_window:?}"
    );
    assert!(
        per_window.values().any(|both| *both == (QUOTA, QUOTA)),
        "no window where both endpoints used their whole quota: {per_window:?}"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_holds_that_endpoint_that_long() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    let stamped = Stamped::new(queued());
    Mock::given(method("POST"))
        .and(path("/v1/accounts/lic/bulk-users"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(stamped.clone())
        .mount(&server)
        .await;
    for n in 0..30 {
        queue(&db.pool, User, &json!({"userId": format!("u{n}")})).await;
    }
    for n in 0..2 {
        queue(
            &db.pool,
            Event,
            &json!({"userId": format!("e{n}"), "eventName": "E"}),
        )
        .await;
    }
    let delivery = DeliverySettings {
        concurrency: 1,
        ..d::delivery()
    };
    let started = Instant::now();
    let worker = Running::start(&db.pool, d::bulk(&server), delivery);
    eventually("the events", Duration::from_secs(5), || async {
        count(
            &db.pool,
            "SELECT count(*) FROM outbox WHERE kind = 'event' AND status = 'delivered'",
        )
        .await
            == 2
    })
    .await;
    let events_done = started.elapsed();
    eventually("the users", Duration::from_secs(20), || async {
        delivered(&db.pool).await == 32
    })
    .await;
    worker.stop().await;

    assert!(
        events_done < Duration::from_secs(5),
        "events waited {events_done:?}"
    );
    // The 429 came at once; the 30 users (the 25 refused and 5 more) went 7 s later.
    let users: Vec<Duration> = stamped
        .calls()
        .into_iter()
        .filter(|(_, e)| e == "bulk-users")
        .map(|(at, _)| at)
        .collect();
    assert_eq!(users.len(), 2, "{users:?}");
    assert!(
        users.iter().all(|at| *at >= Duration::from_millis(6900)),
        "bulk-users called again before Retry-After: {users:?}"
    );
    assert!(
        users.iter().all(|at| *at < Duration::from_secs(10)),
        "{users:?}"
    );
}

#[tokio::test]
async fn transactions_stay_within_their_own_per_minute_quota() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    let stamped = Stamped::new(queued());
    Mock::given(method("POST"))
        .respond_with(stamped.clone())
        .mount(&server)
        .await;
    let metrics = webengage_bridge::http::metrics::handle();
    let waited_before = limiter_wait(&metrics.render(), "transaction");
    // 100 a minute (WebEngage's default): a burst of a sixth, then one per 0.6 s.
    for n in 0..19 {
        let body = json!({"campaignId": "c", "userId": format!("t{n}")});
        queue(&db.pool, Transaction, &body).await;
    }
    let webengage = d::webengage(&server);
    assert_eq!(webengage.limit_transaction_per_min, 100);
    let mut worker = Stepper::new(&db.pool, webengage, d::delivery()).await;
    worker.drain(&db.pool, false).await;

    let at: Vec<Duration> = stamped.calls().into_iter().map(|(at, _)| at).collect();
    assert_eq!(at.len(), 19);
    // A burst of 17, then a call per 0.6 s: the 19th at least 1.2 s after the first.
    assert!(at[18] - at[0] >= Duration::from_millis(1100), "{at:?}");
    let waited = limiter_wait(&metrics.render(), "transaction") - waited_before;
    assert!(
        waited >= 0.5,
        "bridge_limiter_wait_seconds_total grew by {waited}"
    );
}

/// `bridge_limiter_wait_seconds_total{endpoint}` in a rendered scrape.
fn limiter_wait(rendered: &str, endpoint: &str) -> f64 {
    let series = format!("bridge_limiter_wait_seconds_total{{endpoint=\"{endpoint}\"}} ");
    rendered
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn the_breaker_opens_probes_and_closes_without_charging_held_rows() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    let outage = Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount_as_scoped(&server)
        .await;
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(
            queue(&db.pool, User, &json!({"userId": format!("u{n}")}))
                .await
                .id,
        );
    }
    // Probes are made due by the test (`probe_now`), never by the clock.
    let delivery = DeliverySettings {
        breaker_threshold: 3,
        concurrency: 3,
        retry_base: Duration::from_secs(10),
        retry_max_delay: Duration::from_secs(60),
        pause_probe: Duration::from_secs(60),
        ..d::delivery()
    };
    let mut worker = Stepper::new(&db.pool, d::webengage(&server), delivery).await;
    let (_, report) = worker.step().await;
    assert_eq!((report.calls, report.heard), (3, Heard::Failed));
    let Mode::Degraded(reason) = destination::load(&db.pool).await.unwrap().mode() else {
        panic!("three failed calls degrade delivery");
    };
    assert!(
        reason.contains("3 calls") && reason.contains("HTTP 500"),
        "{reason}"
    );

    // Degraded: no claims; one probe when due, on a backoff.
    make_due(&db.pool).await;
    let (step, _) = worker.step().await;
    assert!(matches!(step, Step::Probed { probe: None, .. }), "{step:?}");
    destination::probe_now(&db.pool).await.unwrap();
    let (step, _) = worker.step().await;
    let Step::Probed {
        probe: Some(probe), ..
    } = step
    else {
        panic!("a probe: {step:?}");
    };
    assert_eq!((probe.calls, probe.heard), (1, Heard::Failed));
    let state = destination::load(&db.pool).await.unwrap();
    assert_eq!(state.failed_probes, 1);
    assert!(state.is_degraded());
    assert_eq!(server.received_requests().await.unwrap().len(), 4);

    drop(outage);
    d::accept_all(&server).await;
    destination::probe_now(&db.pool).await.unwrap();
    let (step, _) = worker.step().await;
    let Step::Probed {
        probe: Some(probe), ..
    } = step
    else {
        panic!("a probe: {step:?}");
    };
    assert_eq!(probe.delivered, 1);
    assert_eq!(
        destination::load(&db.pool).await.unwrap().mode(),
        Mode::Running
    );
    let report = worker.drain(&db.pool, true).await;
    assert_eq!(report.delivered, 9);

    // The three failed calls and the failed probe charged their rows; the six rows
    // held back while degraded went out on their first attempt.
    let mut charged = Vec::new();
    for id in &ids {
        let r = row(&db.pool, *id).await;
        assert_eq!(r.status, OutboxStatus::Delivered);
        charged.push(r.attempts);
    }
    charged.sort();
    assert_eq!(charged, [1, 1, 1, 1, 1, 1, 2, 2, 2, 2]);
    let failed = count(
        &db.pool,
        "SELECT count(*) FROM delivery_attempts WHERE outcome = 'transient'",
    )
    .await;
    assert_eq!(failed, 4);
    let outage_ended = count(
        &db.pool,
        "SELECT count(*) FROM destination_outages WHERE ended_at IS NOT NULL",
    )
    .await;
    assert_eq!(outage_ended, 1);
    assert!(
        attempts::list_for_outbox(&db.pool, ids[0])
            .await
            .unwrap()
            .len()
            <= 2
    );
}
