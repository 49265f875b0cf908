//! `/readyz` and `/metrics` answer within half a second whatever Postgres does; a
//! `worker` process serves them too; every metric says what it is.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::bridge::{Bridge, free_port};
use crate::helpers::proxy::PgProxy;
use crate::helpers::{
    API_KEY, AppOptions, LICENSE, TestDb, example_mappings, fixture, queued_webengage, spawn_app,
    spawn_app_on,
};

/// What the routes promise. Under a loaded test run one request may miss it for reasons
/// of its own (a busy machine), so each must stay under `HARD_LIMIT` and the fastest of
/// a round under `LIMIT`; Postgres' own timeouts are 5 s and more.
const LIMIT: Duration = Duration::from_millis(500);
const HARD_LIMIT: Duration = Duration::from_millis(1500);

fn assert_quick(route: &str, times: &[Duration]) {
    let fastest = times.iter().min().unwrap();
    let slowest = times.iter().max().unwrap();
    assert!(
        *fastest < LIMIT && *slowest < HARD_LIMIT,
        "{route} took {times:?}"
    );
}

/// GET `url`: status, body, and how long it took.
async fn timed_get(url: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (status, body, started.elapsed())
}

#[tokio::test]
async fn readyz_and_metrics_answer_quickly_with_postgres_refusing_connections() {
    let port = free_port();
    let bridge = Bridge::serve(&[
        (
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{port}/webengage_bridge"),
        ),
        (
            "BRIDGE_MAPPINGS_DIR",
            example_mappings().display().to_string(),
        ),
    ])
    .await;
    let (mut ready_times, mut metrics_times) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (status, body, took) = timed_get(&format!("{}/readyz", bridge.address)).await;
        assert_eq!(status, 503, "{body}");
        ready_times.push(took);
        let detail: Value = serde_json::from_str(&body).unwrap();
        let error = detail["database"]["error"].as_str().unwrap();
        assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
        let (status, body, took) = timed_get(&format!("{}/metrics", bridge.address)).await;
        assert_eq!(status, 200);
        metrics_times.push(took);
        assert!(body.contains("bridge_database_up 0"), "{body}");
    }
    assert_quick("/readyz", &ready_times);
    assert_quick("/metrics", &metrics_times);
}

#[tokio::test]
async fn readyz_and_metrics_answer_quickly_while_postgres_hangs() {
    let db = TestDb::new().await;
    let proxy = PgProxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], 5432))).await;
    let url = proxy.url_for(&db.url);
    let app = spawn_app_on(
        db,
        &url,
        AppOptions {
            with_worker: false,
            ..AppOptions::default()
        },
    )
    .await;
    let (status, _, _) = timed_get(&format!("{}/readyz", app.address)).await;
    assert_eq!(status, 200);
    proxy.hang();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut ready_times, mut metrics_times) = (Vec::new(), Vec::new());
    loop {
        let (status, body, took) = timed_get(&format!("{}/readyz", app.address)).await;
        ready_times.push(took);
        assert!(took < HARD_LIMIT, "/readyz took {took:?}");
        let (_, metrics, took) = timed_get(&format!("{}/metrics", app.address)).await;
        metrics_times.push(took);
        assert!(took < HARD_LIMIT, "/metrics took {took:?}");
        if status == 503 {
            let detail: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(detail["database"]["ok"], json!(false));
            assert!(metrics.contains("bridge_database_up 0"), "{metrics}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a hung Postgres never made /readyz 503"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_quick("/readyz", &ready_times);
    assert_quick("/metrics", &metrics_times);
    proxy.down();
    proxy.up();
}

/// A `worker` process alone: its `/healthz`, `/readyz` and `/metrics` on
/// BRIDGE_WORKER_LISTEN, with the delivery counters of its own sends.
#[tokio::test]
async fn a_worker_serves_health_and_its_delivery_metrics() {
    let app = spawn_app(AppOptions {
        with_worker: false,
        ..AppOptions::default()
    })
    .await;
    let posted = app
        .post(
            "leadsquared",
            "application/json",
            fixture("lsq_lead_create.json"),
        )
        .await;
    assert_eq!(posted.status(), 200);
    let webengage = queued_webengage().await;
    let worker = Bridge::start(
        &["worker"],
        "BRIDGE_WORKER_LISTEN",
        &[
            ("DATABASE_URL", app.db.url.clone()),
            ("WEBENGAGE_LICENSE_CODE", LICENSE.to_owned()),
            ("WEBENGAGE_API_KEY", API_KEY.to_owned()),
            ("WEBENGAGE_BASE_URL", webengage.uri()),
            ("WEBENGAGE_BULK", "false".to_owned()),
        ],
    )
    .await;
    app.wait_for_count("SELECT count(*) FROM outbox WHERE status <> 'delivered'", 0)
        .await;
    let (status, body, _) = timed_get(&format!("{}/readyz", worker.address)).await;
    assert_eq!(status, 200, "{body}");
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["delivery"]["state"], "running", "{detail}");
    let (_, metrics, _) = timed_get(&format!("{}/metrics", worker.address)).await;
    for expected in [
        r#"bridge_webengage_responses_total{endpoint="users",code="201"}"#,
        "bridge_delivery_latency_seconds_bucket",
        r#"bridge_outbox_rows{status="delivered"}"#,
    ] {
        assert!(metrics.contains(expected), "no {expected} in:\n{metrics}");
    }
}

/// Every metric family in a scrape after traffic has `# HELP`, and the group-commit
/// histogram counts requests (buckets 1, 2, 4, ...), not seconds.
#[tokio::test]
async fn every_metric_has_help_and_fitting_buckets() {
    let app = spawn_app(AppOptions::default()).await;
    for _ in 0..3 {
        let r = app
            .post(
                "leadsquared",
                "application/json",
                fixture("lsq_lead_create.json"),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let (_, text, _) = timed_get(&format!("{}/metrics", app.address)).await;
    let families = super::ops_deploy::families(&text);
    assert!(families.contains("bridge_group_commit_requests"), "{text}");
    for family in &families {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no # HELP for {family}:\n{text}"
        );
    }
    assert!(
        text.contains(r#"bridge_group_commit_requests_bucket{le="1"}"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"bridge_group_commit_requests_bucket{le="0.01"}"#),
        "request counts in seconds buckets:\n{text}"
    );
}

/// Two workers on one address: the second says which setting to change, exit 1.
#[tokio::test]
async fn a_second_worker_on_a_taken_address_names_the_setting() {
    let db = TestDb::new().await;
    let first = Bridge::start(
        &["worker"],
        "BRIDGE_WORKER_LISTEN",
        &[("DATABASE_URL", db.url.clone())],
    )
    .await;
    let taken = first.address.trim_start_matches("http://").to_owned();
    let output = crate::helpers::bridge::binary()
        .arg("worker")
        .env("DATABASE_URL", &db.url)
        .env("BRIDGE_WORKER_LISTEN", &taken)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("binding BRIDGE_WORKER_LISTEN={taken}")),
        "{stderr}"
    );
}
