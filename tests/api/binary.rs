//! The real binary: configuration checked at start, graceful shutdown on SIGTERM, and
//! logs that follow a request to WebEngage without ever showing a secret.

use std::time::Duration;

use crate::helpers::bridge::{Bridge, binary};
use crate::helpers::{ADMIN_TOKEN, API_KEY, LICENSE, TestDb, VIEWER_TOKEN, fixture};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn queued(delay: Duration) -> ResponseTemplate {
    ResponseTemplate::new(201)
        .set_body_json(json!({"response": {"status": "queued"}}))
        .set_delay(delay)
}

async fn webengage(delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(queued(delay))
        .mount(&server)
        .await;
    server
}

fn base_env(db: &TestDb, webengage: &MockServer) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.url.clone()),
        (
            "BRIDGE_MAPPINGS_DIR",
            crate::helpers::example_mappings().display().to_string(),
        ),
        ("WEBENGAGE_LICENSE_CODE", LICENSE.to_owned()),
        ("WEBENGAGE_API_KEY", API_KEY.to_owned()),
        ("WEBENGAGE_BASE_URL", webengage.uri()),
        ("RUST_LOG", "info".to_owned()),
    ]
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

async fn wait_until(db: &TestDb, sql: &str, expected: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while count(db, sql).await != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{sql}` never reached {expected}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[test]
fn every_configuration_problem_is_reported_at_once_with_exit_2() {
    let output = binary()
        .arg("serve")
        .env("DATABASE_URL", "mysql://db.example/x")
        .env("BRIDGE_MAPPINGS_DIR", "/nonexistent/mappings")
        .env("WEBENGAGE_DATA_CENTER", "mars")
        .env("BRIDGE_RETRY_BASE", "soon")
        .env("BRIDGE_MAX_BODY", "lots")
        .env("BRIDGE_LISTEN", "nowhere")
        .env("WEBENGAGE_BASE_URL", "not a url")
        .env("BRIDGE_HTTP_WORKERS", "0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in [
        "DATABASE_URL",
        "BRIDGE_MAPPINGS_DIR",
        "WEBENGAGE_DATA_CENTER",
        "BRIDGE_RETRY_BASE",
        "BRIDGE_MAX_BODY",
        "BRIDGE_LISTEN",
        "WEBENGAGE_BASE_URL",
        "BRIDGE_HTTP_WORKERS",
    ] {
        assert!(stderr.contains(name), "{name} not reported:\n{stderr}");
    }
}

/// SIGTERM while WebEngage is slow to answer: exit 0, nothing left `in_flight`.
/// `expected(rows)`: how many rows must end in `settled_status`.
async fn sigterm_during_delivery(
    delay: Duration,
    settled_status: &str,
    expected: impl Fn(i64) -> i64,
) {
    let db = TestDb::new().await;
    let webengage = webengage(delay).await;
    let mut bridge = Bridge::serve(&base_env(&db, &webengage)).await;
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/leadsquared", bridge.address))
        .header("content-type", "application/json")
        .body(fixture("lsq_lead_create.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rows = count(&db, "SELECT count(*) FROM outbox").await;
    // A lead makes a user row then an event row: the event waits for the user's.
    wait_until(
        &db,
        "SELECT count(*) FROM outbox WHERE status = 'in_flight'",
        1,
    )
    .await;
    bridge.signal("TERM");
    let status = bridge.wait_exit(Duration::from_secs(40)).await;
    assert!(status.success(), "exit {status:?}; log:\n{}", bridge.log());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM outbox WHERE status = 'in_flight'"
        )
        .await,
        0
    );
    let settled = format!("SELECT count(*) FROM outbox WHERE status = '{settled_status}'");
    assert_eq!(
        count(&db, &settled).await,
        expected(rows),
        "log:\n{}",
        bridge.log()
    );
}

#[tokio::test]
async fn sigterm_lets_a_slow_delivery_finish_within_the_grace() {
    // The user row finishes; its event was never claimed.
    sigterm_during_delivery(Duration::from_secs(2), "delivered", |_| 1).await;
}

#[tokio::test]
async fn sigterm_hands_back_a_delivery_slower_than_the_grace() {
    sigterm_during_delivery(Duration::from_secs(25), "pending", |rows| rows).await;
}

const LSQ_TOKEN: &str = "lsq-header-token-7c41d2";
const SF_TOKEN: &str = "sf-query-token-b93e05";
const SESSION_ID: &str = "00D5j!AQ4AQLIVESESSIONTOKEN-e81f";

/// The example mappings, with LeadSquared behind a header token and Salesforce behind
/// a URL token as well as its org id.
fn secured_mappings(dir: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(crate::helpers::example_mappings())
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
    let root = dir.join("mappings");
    let edit = |file: &str, from: &str, to: &str| {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} changed: update this test");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    };
    edit(
        "leadsquared.yaml",
        "  auth: none",
        "  auth: { header: { name: X-Webhook-Token, value_env: LSQ_WEBHOOK_TOKEN } }",
    );
    edit(
        "salesforce.yaml",
        "auth: { organization_ids: [00D5j00000KqRtB] }",
        "auth: { organization_ids: [00D5j00000KqRtB], query: { name: token, value_env: SF_OUTBOUND_TOKEN } }",
    );
}

#[tokio::test]
async fn a_full_flow_at_debug_logs_no_secret_and_follows_the_request_id() {
    let db = TestDb::new().await;
    let webengage = webengage(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    secured_mappings(dir.path());
    let mut env = base_env(&db, &webengage);
    env.retain(|(k, _)| *k != "BRIDGE_MAPPINGS_DIR" && *k != "RUST_LOG");
    env.extend([
        (
            "BRIDGE_MAPPINGS_DIR",
            dir.path().join("mappings").display().to_string(),
        ),
        ("RUST_LOG", "debug".to_owned()),
        ("BRIDGE_ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        ("BRIDGE_VIEWER_TOKEN", VIEWER_TOKEN.to_owned()),
        ("LSQ_WEBHOOK_TOKEN", LSQ_TOKEN.to_owned()),
        ("SF_OUTBOUND_TOKEN", SF_TOKEN.to_owned()),
    ]);
    let mut bridge = Bridge::serve(&env).await;
    let http = reqwest::Client::new();
    let lsq = http
        .post(format!("{}/webhooks/leadsquared", bridge.address))
        .header("content-type", "application/json")
        .header("x-webhook-token", LSQ_TOKEN)
        .body(fixture("lsq_lead_create.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(lsq.status(), 200);
    let soap = String::from_utf8(fixture("sf_outbound_lead_single.xml"))
        .unwrap()
        .replace(
            r#"<SessionId xsi:nil="true"/>"#,
            &format!("<SessionId>{SESSION_ID}</SessionId>"),
        );
    assert!(
        soap.contains(SESSION_ID),
        "the fixture changed: update this test"
    );
    let sf = http
        .post(format!(
            "{}/webhooks/salesforce?token={SF_TOKEN}",
            bridge.address
        ))
        .header("content-type", "text/xml")
        .body(soap)
        .send()
        .await
        .unwrap();
    assert_eq!(sf.status(), 200);
    for token in [ADMIN_TOKEN, VIEWER_TOKEN] {
        let stats = http
            .get(format!("{}/admin/api/stats", bridge.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(stats.status(), 200);
    }
    wait_until(
        &db,
        "SELECT count(*) FROM outbox WHERE status <> 'delivered'",
        0,
    )
    .await;
    assert!(count(&db, "SELECT count(*) FROM outbox").await >= 2);
    bridge.signal("TERM");
    assert!(bridge.wait_exit(Duration::from_secs(40)).await.success());

    let log = bridge.log();
    for secret in [
        API_KEY,
        ADMIN_TOKEN,
        VIEWER_TOKEN,
        LSQ_TOKEN,
        SF_TOKEN,
        SESSION_ID,
    ] {
        assert!(!log.contains(secret), "the log shows the secret `{secret}`");
    }
    let request_id: String =
        sqlx::query_scalar("SELECT request_id FROM inbound_records WHERE source = 'leadsquared'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains(&request_id) && l.contains("delivery attempt finished")),
        "the worker's log does not name the webhook's request id {request_id}"
    );
}
