//! The delivery worker against a real Postgres and wiremock playing WebEngage, stepped
//! by the test; a few tests run the whole loop.

use std::time::Duration;

use crate::helpers::delivery::{
    self as d, KEY, LICENSE, Running, Stepper, eventually, make_due, queue, queued, row, status,
};
use serde_json::{Value, json};
use webengage_bridge::config::{DataCenter, DeliverySettings, WebEngageSettings};
use webengage_bridge::delivery::job::Heard;
use webengage_bridge::delivery::worker::Step;
use webengage_bridge::store::destination::{self, Mode};
use webengage_bridge::store::{OutboxStatus, attempts};
use webengage_bridge::webengage::OperationKind::{Event, Transaction, User};
use webengage_bridge::webengage::client::{Endpoint, FailureKind, WebEngageClient};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn delivers_exact_body_to_each_endpoint_with_bearer_and_a_32_hex_request_id() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    let user = json!({"userId": "u1", "firstName": "Asha", "attributes": {"plan": "gold"}});
    let event = json!({"userId": "u1", "eventName": "Lead Created", "eventData": {"n": 1}});
    let txn = json!({"campaignId": "camp-7", "userId": "u2", "ttl": 120});
    let user_row = queue(&db.pool, User, &user).await;
    let event_row = queue(&db.pool, Event, &event).await;
    let txn_row = queue(&db.pool, Transaction, &txn).await;
    let expectations = [
        (format!("/v1/accounts/{LICENSE}/users"), user_row, user),
        (format!("/v1/accounts/{LICENSE}/events"), event_row, event),
        (
            format!("/v2/accounts/{LICENSE}/experiments/camp-7/transaction"),
            txn_row,
            // The campaign id goes in the URL, not the body.
            json!({"userId": "u2", "ttl": 120}),
        ),
    ];
    for (p, queued_row, body) in expectations {
        let hex = queued_row.request_id.simple().to_string();
        assert_eq!(hex.len(), 32);
        Mock::given(method("POST"))
            .and(path(p))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .and(header("x-request-id", hex.as_str()))
            .and(header("content-type", "application/json"))
            .and(body_json(body))
            .respond_with(queued())
            .expect(1)
            .mount(&server)
            .await;
    }

    let mut worker = Stepper::new(&db.pool, d::webengage(&server), d::delivery()).await;
    // The event waits behind u1's user row: two steps.
    let report = worker.drain(&db.pool, false).await;
    assert_eq!((report.delivered, report.calls), (3, 3));
    for queued_row in [user_row, event_row, txn_row] {
        let delivered = row(&db.pool, queued_row.id).await;
        assert_eq!(
            (delivered.status, delivered.attempts),
            (OutboxStatus::Delivered, 1)
        );
        assert!(delivered.delivered_at.is_some() && delivered.lease_token.is_none());
        let tries = attempts::list_for_outbox(&db.pool, queued_row.id)
            .await
            .unwrap();
        assert_eq!(tries.len(), 1);
        assert_eq!(
            (tries[0].http_status, tries[0].outcome.as_str()),
            (Some(201), "delivered")
        );
    }
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
    d::accept_all(&server).await;
    let queued_row = queue(&db.pool, User, &json!({"userId": "u1"})).await;

    // The retry waits 10 s unless the test makes it due.
    let delivery = DeliverySettings {
        retry_base: Duration::from_secs(10),
        retry_max_delay: Duration::from_secs(60),
        ..d::delivery()
    };
    let mut worker = Stepper::new(&db.pool, d::webengage(&server), delivery).await;
    let (_, first) = worker.step().await;
    assert_eq!((first.heard, first.pending), (Heard::Failed, 1));
    let waiting = row(&db.pool, queued_row.id).await;
    assert_eq!(
        (waiting.status, waiting.attempts),
        (OutboxStatus::Pending, 1)
    );
    assert_eq!(
        waiting.last_error.as_deref(),
        Some("HTTP 500: upstream broke")
    );
    // Not due before its backoff.
    assert_eq!(worker.step().await.1.calls, 0);
    make_due(&db.pool).await;
    assert_eq!(worker.step().await.1.delivered, 1);

    assert_eq!(row(&db.pool, queued_row.id).await.attempts, 2);
    let hex = queued_row.request_id.simple().to_string();
    assert_eq!(d::request_ids(&server).await, vec![hex.clone(), hex]);
    let tries = attempts::list_for_outbox(&db.pool, queued_row.id)
        .await
        .unwrap();
    let seen: Vec<_> = tries
        .iter()
        .map(|a| (a.http_status, a.outcome.as_str(), a.request_id))
        .collect();
    assert_eq!(
        seen,
        vec![
            (Some(500), "transient", queued_row.request_id),
            (Some(201), "delivered", queued_row.request_id)
        ]
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
    let queued_row = queue(&db.pool, Event, &json!({"userId": "u1"})).await;

    let mut worker = Stepper::new(&db.pool, d::webengage(&server), d::delivery()).await;
    assert_eq!(worker.step().await.1.dead, 1);

    let dead = row(&db.pool, queued_row.id).await;
    assert_eq!((dead.status, dead.attempts), (OutboxStatus::Dead, 1));
    assert_eq!(
        dead.last_error.as_deref(),
        Some("HTTP 400: eventName is required")
    );
    let tries = attempts::list_for_outbox(&db.pool, queued_row.id)
        .await
        .unwrap();
    assert_eq!(
        (tries[0].http_status, tries[0].outcome.as_str()),
        (Some(400), "rejected")
    );
    assert_eq!(
        destination::load(&db.pool).await.unwrap().mode(),
        Mode::Running
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
    let first = queue(&db.pool, User, &json!({"userId": "u1"})).await;
    let second = queue(&db.pool, User, &json!({"userId": "u2"})).await;

    // Probes are made due by the test (`probe_now`), never by the clock.
    let delivery = DeliverySettings {
        pause_probe: Duration::from_secs(60),
        ..d::delivery()
    };
    let mut worker = Stepper::new(&db.pool, d::webengage(&server), delivery).await;
    let (_, report) = worker.step().await;
    assert_eq!(report.heard, Heard::Refused);
    let state = destination::load(&db.pool).await.unwrap();
    let Mode::Paused(reason) = state.mode() else {
        panic!("a 401 pauses delivery: {state:?}");
    };
    assert!(
        reason.contains("401") && reason.contains("Authentication failed"),
        "{reason}"
    );
    for queued_row in [first, second] {
        let waiting = row(&db.pool, queued_row.id).await;
        assert_eq!(
            (waiting.status, waiting.attempts),
            (OutboxStatus::Pending, 0),
            "a 401 charges no attempt"
        );
    }
    // Paused: no claim; the probe waits for BRIDGE_PAUSE_PROBE.
    let calls = server.received_requests().await.unwrap().len();
    let (step, _) = worker.step().await;
    assert!(matches!(step, Step::Probed { probe: None, .. }), "{step:?}");
    assert_eq!(server.received_requests().await.unwrap().len(), calls);
    // A due probe that is refused again keeps the pause.
    destination::probe_now(&db.pool).await.unwrap();
    let (step, _) = worker.step().await;
    assert!(
        matches!(step, Step::Probed { probe: Some(_), .. }),
        "{step:?}"
    );
    assert!(destination::load(&db.pool).await.unwrap().is_paused());

    drop(guard);
    d::accept_all(&server).await;
    destination::probe_now(&db.pool).await.unwrap();
    let (step, _) = worker.step().await;
    let Step::Probed {
        probe: Some(probe), ..
    } = step
    else {
        panic!("the probe ran: {step:?}");
    };
    assert_eq!((probe.heard, probe.delivered), (Heard::Accepted, 1));
    assert_eq!(
        destination::load(&db.pool).await.unwrap().mode(),
        Mode::Running
    );
    assert_eq!(worker.drain(&db.pool, false).await.delivered, 1);
    let outcomes: Vec<String> = attempts::list_for_outbox(&db.pool, first.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(outcomes.first().map(String::as_str), Some("unauthorized"));
    assert_eq!(outcomes.last().map(String::as_str), Some("delivered"));
    assert_eq!(row(&db.pool, first.id).await.attempts, 1);
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
    d::accept_all(&server).await;
    let mut ids = Vec::new();
    for body in &bodies {
        ids.push(queue(&db.pool, Event, body).await.id);
    }
    let other = queue(
        &db.pool,
        Event,
        &json!({"userId": "u2", "eventName": "other"}),
    )
    .await;

    let mut worker = Stepper::new(&db.pool, d::webengage(&server), d::delivery()).await;
    let report = worker.drain(&db.pool, true).await;
    assert_eq!(report.delivered, 4);
    assert_eq!(status(&db.pool, other.id).await, OutboxStatus::Delivered);

    let arrived: Vec<Value> = d::calls(&server)
        .await
        .into_iter()
        .map(|(_, body)| body)
        .filter(|b| b["userId"] == "u1")
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
async fn a_429_waits_for_the_next_window_without_charging() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("X-RateLimit-Remaining", "0"))
        .mount(&server)
        .await;
    let queued_row = queue(&db.pool, User, &json!({"userId": "u1"})).await;

    let mut worker = Stepper::new(&db.pool, d::webengage(&server), d::delivery()).await;
    let (_, report) = worker.step().await;
    assert_eq!((report.heard, report.pending), (Heard::Limited, 1));

    let waiting = row(&db.pool, queued_row.id).await;
    assert_eq!(
        (waiting.status, waiting.attempts),
        (OutboxStatus::Pending, 0)
    );
    let wait = waiting.next_attempt_at - time::OffsetDateTime::now_utc();
    assert!(
        wait > time::Duration::ZERO && wait <= time::Duration::minutes(1),
        "released until the next window: {wait}"
    );
    assert_eq!(
        attempts::list_for_outbox(&db.pool, queued_row.id)
            .await
            .unwrap()[0]
            .outcome,
        "rate_limited"
    );
}

#[tokio::test]
async fn a_transient_failure_past_the_age_limit_is_dead_unless_an_outage_took_the_time() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&server)
        .await;
    let created_ago = |id: i64, minutes: i32| {
        sqlx::query(
            "UPDATE outbox SET created_at = now() - make_interval(mins => $2) WHERE id = $1",
        )
        .bind(id)
        .bind(minutes)
        .execute(&db.pool)
    };
    let old = queue(&db.pool, User, &json!({"userId": "u1"})).await;
    created_ago(old.id, 65).await.unwrap();

    let mut worker = Stepper::new(&db.pool, d::webengage(&server), d::delivery()).await;
    assert_eq!(worker.step().await.1.dead, 1);
    let dead = row(&db.pool, old.id).await;
    assert_eq!(dead.status, OutboxStatus::Dead);
    // The age is read when the step runs: a second or so past the 65 minutes.
    let error = dead.last_error.unwrap_or_default();
    assert!(
        error.starts_with("gave up after 1 attempts over 1h 5m")
            && error.ends_with(": HTTP 502: (empty response)"),
        "{error}"
    );

    // Created 105 minutes ago, but WebEngage was paused or degraded for 90 of them:
    // 15 minutes of its 1 h retry age are used.
    let through_outage = queue(&db.pool, User, &json!({"userId": "u2"})).await;
    created_ago(through_outage.id, 105).await.unwrap();
    sqlx::query(
        "INSERT INTO destination_outages (started_at, ended_at, reason)
         VALUES (now() - interval '100 minutes', now() - interval '10 minutes', 'down')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let (_, report) = worker.step().await;
    assert_eq!((report.dead, report.pending), (0, 1));
    let retried = row(&db.pool, through_outage.id).await;
    assert_eq!(
        (retried.status, retried.attempts),
        (OutboxStatus::Pending, 1)
    );
}

#[tokio::test]
async fn the_clients_timeout_and_connection_errors_are_reported_without_the_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(queued().set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let settings = d::webengage(&server);
    let client = WebEngageClient::with_timeouts(
        settings.account(),
        Duration::from_millis(200),
        Duration::from_millis(200),
    )
    .unwrap();
    let id = uuid::Uuid::now_v7();
    let report = client
        .send(&Endpoint::Users, id, &json!({"userId": "u"}))
        .await;
    assert_eq!(report.failure, Some(FailureKind::Timeout));
    assert_eq!(report.http_status, None);
    let text = report.excerpt.unwrap();
    assert!(text.starts_with("timeout: "), "{text}");
    assert!(
        !text.contains(&server.uri()) && !text.contains(LICENSE),
        "{text}"
    );
    assert!(report.latency >= Duration::from_millis(200));

    // Nothing listens on a port just released.
    let port = crate::helpers::bridge::free_port();
    let closed = WebEngageSettings {
        base_url: Some(format!("http://127.0.0.1:{port}")),
        ..settings
    };
    let client = WebEngageClient::with_timeouts(
        closed.account(),
        Duration::from_secs(2),
        Duration::from_secs(2),
    )
    .unwrap();
    let report = client.send(&Endpoint::Events, id, &json!({})).await;
    assert_eq!(report.failure, Some(FailureKind::Connect));
    let text = report.excerpt.unwrap();
    assert!(text.starts_with("connection failed: "), "{text}");
    assert!(!text.contains(&port.to_string()), "{text}");
}

#[tokio::test]
async fn the_client_reads_the_rate_limit_headers_of_a_real_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            queued()
                .insert_header("X-RateLimit-Limit", "5000")
                .insert_header("X-RateLimit-Remaining", "37"),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .mount(&server)
        .await;
    let client = WebEngageClient::new(d::webengage(&server).account()).unwrap();
    let id = uuid::Uuid::now_v7();
    let report = client.send(&Endpoint::Users, id, &json!({})).await;
    assert_eq!(report.http_status, Some(201));
    assert_eq!(
        (report.rate_limit.limit, report.rate_limit.remaining),
        (Some(5000), Some(37))
    );
    assert_eq!(
        report.excerpt.as_deref(),
        Some(r#"{"response":{"status":"queued"}}"#)
    );
    let limited = client.send(&Endpoint::Users, id, &json!({})).await;
    assert_eq!(limited.rate_limit.retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn each_data_center_reaches_its_exact_host() {
    let expected = [
        ("global", "https://api.webengage.com"),
        ("india", "https://api.in.webengage.com"),
        ("ksa", "https://api.ksa.webengage.com"),
        ("eug", "https://api.eug.webengage.com"),
    ];
    assert_eq!(expected.len(), DataCenter::ALL.len());
    for (name, host) in expected {
        let cli = <WebEngageSettings as clap::Args>::augment_args(clap::Command::new("t"));
        let matches = cli
            .try_get_matches_from(["t", "--data-center", name, "--license-code", "lic"])
            .unwrap();
        let mut settings =
            <WebEngageSettings as clap::FromArgMatches>::from_arg_matches(&matches).unwrap();
        // Secrets come from the environment only, never from flags.
        settings.api_key = Some("k".to_owned().into());
        let client = WebEngageClient::new(settings.account()).unwrap();
        assert_eq!(
            client.url(&Endpoint::Users),
            format!("{host}/v1/accounts/lic/users"),
            "WEBENGAGE_DATA_CENTER={name}"
        );
    }
}

#[tokio::test]
async fn without_credentials_delivery_is_paused_and_says_why() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    let queued_row = queue(&db.pool, User, &json!({"userId": "u1"})).await;
    let settings = WebEngageSettings {
        api_key: None,
        ..d::webengage(&server)
    };

    let worker = Running::start(&db.pool, settings, d::delivery());
    eventually("the pause", Duration::from_secs(15), || async {
        destination::load(&db.pool).await.unwrap().is_paused()
    })
    .await;
    worker.stop().await;

    let reason = destination::load(&db.pool)
        .await
        .unwrap()
        .paused_reason
        .unwrap();
    // Only the key is missing: the reason names exactly that variable.
    assert!(reason.ends_with("WEBENGAGE_API_KEY is not set"), "{reason}");
    assert!(!reason.contains("WEBENGAGE_LICENSE_CODE"), "{reason}");
    assert_eq!(status(&db.pool, queued_row.id).await, OutboxStatus::Pending);
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
    let queued_row = queue(&db.pool, User, &json!({"userId": "u1"})).await;

    let worker = Running::start(&db.pool, d::webengage(&server), d::delivery());
    eventually("the call to start", Duration::from_secs(15), || async {
        !server.received_requests().await.unwrap().is_empty()
    })
    .await;
    worker.stop().await;

    let released = row(&db.pool, queued_row.id).await;
    assert_eq!(
        (released.status, released.attempts),
        (OutboxStatus::Pending, 0)
    );
    assert!(released.lease_token.is_none());
}

#[tokio::test]
async fn the_loop_delivers_what_is_queued_while_it_runs() {
    let db = crate::helpers::TestDb::new().await;
    let server = MockServer::start().await;
    d::accept_all(&server).await;
    let worker = Running::start(&db.pool, d::webengage(&server), d::delivery());
    // Queued after the worker started: the NOTIFY (or the poll) wakes it.
    let queued_row = queue(&db.pool, User, &json!({"userId": "u1"})).await;
    eventually("the delivery", Duration::from_secs(15), || async {
        status(&db.pool, queued_row.id).await == OutboxStatus::Delivered
    })
    .await;
    worker.stop().await;
}

async fn get_json(app: &crate::helpers::TestApp, path: &str) -> Value {
    app.http
        .get(format!("{}{path}", app.address))
        .bearer_auth(crate::helpers::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A scrape of `/metrics` once it shows every one of `lines`: the delivery state and
/// the backlog gauges are read in the background, a moment after they change.
async fn scrape_showing(app: &crate::helpers::TestApp, lines: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = app.metrics().await;
        if lines.iter().all(|line| text.contains(line)) {
            return text;
        }
        let missing: Vec<&&str> = lines.iter().filter(|l| !text.contains(**l)).collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing:?} not in {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_401_pause_shows_in_the_metrics_and_the_attempts_of_a_row_in_the_api() {
    let app = crate::helpers::spawn_app(crate::helpers::AppOptions::default()).await;
    let refused = Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string("no"))
        .mount_as_scoped(&app.webengage)
        .await;
    let queued_row = queue(&app.db.pool, User, &json!({"userId": "u1"})).await;
    eventually("the pause", Duration::from_secs(15), || async {
        destination::load(&app.db.pool).await.unwrap().is_paused()
    })
    .await;
    scrape_showing(
        &app,
        &["bridge_delivery_paused 1", "bridge_delivery_degraded 0"],
    )
    .await;

    drop(refused);
    d::accept_all(&app.webengage).await;
    eventually("the probe to deliver", Duration::from_secs(15), || async {
        status(&app.db.pool, queued_row.id).await == OutboxStatus::Delivered
    })
    .await;
    scrape_showing(&app, &["bridge_delivery_paused 0"]).await;

    let detail = get_json(&app, &format!("/admin/api/outbox/{}", queued_row.id)).await;
    let log = detail["attempts_log"].as_array().unwrap();
    let seen: Vec<(Value, Value)> = log
        .iter()
        .map(|a| (a["http_status"].clone(), a["outcome"].clone()))
        .collect();
    assert_eq!(seen.first(), Some(&(json!(401), json!("unauthorized"))));
    assert_eq!(seen.last(), Some(&(json!(201), json!("delivered"))));
    for attempt in log {
        assert_eq!(
            attempt["request_id"],
            json!(queued_row.request_id.to_string())
        );
        assert!(attempt["latency_ms"].as_i64().unwrap() >= 0);
        assert!(attempt["attempted_at"].is_string());
    }
    assert_eq!(log[0]["response_excerpt"], "no");
}

#[tokio::test]
async fn the_breaker_and_the_backlog_show_in_readyz_stats_and_metrics() {
    let app = crate::helpers::spawn_app(crate::helpers::AppOptions::default()).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&app.webengage)
        .await;
    for n in 0..12 {
        queue(&app.db.pool, User, &json!({"userId": format!("u{n}")})).await;
    }
    queue(
        &app.db.pool,
        Event,
        &json!({"userId": "u0", "eventName": "E"}),
    )
    .await;
    eventually("the breaker", Duration::from_secs(15), || async {
        destination::load(&app.db.pool).await.unwrap().is_degraded()
    })
    .await;

    let ready = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "degraded is not unready");
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["delivery"]["state"], "degraded");
    assert!(
        ready["delivery"]["reason"]
            .as_str()
            .unwrap()
            .contains("HTTP 503"),
        "{ready}"
    );
    let stats = get_json(&app, "/admin/api/stats").await;
    assert_eq!(stats["delivery"]["state"], "degraded");
    let backlog = &stats["backlog"];
    assert_eq!(
        backlog["queued"],
        json!({"users": 12, "events": 1, "transactions": 0})
    );
    // The app's worker delivers single users at 5,000 a minute: 12 rows, 0.144 s.
    assert_eq!(backlog["capacity_per_minute"]["users"], 5000);
    let drain = backlog["drain_seconds"].as_f64().unwrap();
    assert!((drain - 0.144).abs() < 1e-9, "{backlog}");

    scrape_showing(
        &app,
        &[
            "bridge_delivery_degraded 1",
            "bridge_outbox_queued{kind=\"user\"} 12",
            "bridge_outbox_queued{kind=\"event\"} 1",
            "bridge_backlog_drain_seconds 0.144",
        ],
    )
    .await;
}
